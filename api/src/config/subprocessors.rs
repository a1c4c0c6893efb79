//! The operator's sub-processor list for the public trust page, read from the TOML file
//! named by `PARLO_SUBPROCESSORS_FILE`: `[[subprocessor]]` tables with `name`, `purpose`,
//! `location`, `added` and optional `removed` (dates `YYYY-MM-DD`).

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// One entry of the operator's sub-processor list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubProcessor {
    pub name: String,
    pub purpose: String,
    pub location: String,
    /// The day it was added (a change customers are told about), `YYYY-MM-DD`.
    #[serde(with = "toml_date")]
    pub added: time::Date,
    /// The day it stopped being used, if it did; kept on the list as part of its history.
    #[serde(default, with = "toml_date::option")]
    pub removed: Option<time::Date>,
}

/// TOML dates (`added = 2025-01-15`, or the same as a string) as `time::Date`, written back
/// as `"2025-01-15"` (for the JSON twin of the list).
mod toml_date {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Toml(toml::value::Datetime),
        Text(String),
    }

    fn parse(raw: Raw) -> Result<time::Date, String> {
        let text = match raw {
            Raw::Toml(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
            Raw::Toml(dt) => return Err(format!("{dt} is not a plain date (YYYY-MM-DD)")),
            Raw::Text(t) => t,
        };
        time::Date::parse(
            &text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<time::Date, D::Error> {
        parse(Raw::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(date: &time::Date, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(date)
    }

    pub mod option {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<time::Date>, D::Error> {
            Option::<Raw>::deserialize(d)?
                .map(parse)
                .transpose()
                .map_err(serde::de::Error::custom)
        }

        pub fn serialize<S: Serializer>(
            date: &Option<time::Date>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match date {
                Some(d) => s.collect_str(d),
                None => s.serialize_none(),
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubProcessorsFile {
    #[serde(default)]
    subprocessor: Vec<SubProcessor>,
}

/// Reads `PARLO_SUBPROCESSORS_FILE`.
pub fn load_subprocessors(path: &Path) -> anyhow::Result<Vec<SubProcessor>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the sub-processor list {}", path.display()))?;
    let file: SubProcessorsFile = toml::from_str(&text)
        .with_context(|| format!("parsing the sub-processor list {}", path.display()))?;
    Ok(file.subprocessor)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Settings};

    #[test]
    fn subprocessor_list_is_read_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subprocessors.toml");
        std::fs::write(
            &file,
            "[[subprocessor]]\nname = \"Mistral AI\"\npurpose = \"LLM inference\"\n\
             location = \"EU (France)\"\nadded = 2025-01-15\n",
        )
        .unwrap();
        let cli = Settings {
            subprocessors_file: Some(file),
            security_contact: Some("mailto:security@example.com".into()),
            ..Settings::default()
        };
        let c = Config::load(&cli, None, &|_| None).unwrap();
        assert_eq!(c.subprocessors.len(), 1);
        assert_eq!(c.subprocessors[0].added.to_string(), "2025-01-15");
        let bad = Settings {
            security_contact: Some("security@example.com".into()),
            ..Settings::default()
        };
        assert!(Config::load(&bad, None, &|_| None).is_err());
    }
}

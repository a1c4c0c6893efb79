//! Misspelled `PARLO_*` environment variables. Clap ignores variables it does not know, so
//! `PARLO_LISTN=…` would silently leave the default in place (unknown keys of the TOML file
//! are already errors). At start-up `parlo serve` reports each unknown `PARLO_*` variable
//! with the nearest known name; in production it refuses to start (a typo there could leave
//! a security setting at its default), in development it warns.

use anyhow::bail;

/// Read outside clap: secrets (never flags) and the variables of the test and build tooling,
/// which may be set in the same environment.
pub const OTHER_KNOWN_ENV: &[&str] = &[
    "PARLO_MASTER_KEYS",
    "PARLO_TOKEN_KEYS",
    "PARLO_PLATFORM_MISTRAL_KEY",
    "PARLO_SMTP_URL",
    "PARLO_BACKUP_SIGNING_KEY",
    "PARLO_TEST_PG_URL",
    "PARLO_TEST_DIST",
    "PARLO_PUBLISH_DIST",
    "PARLO_CHROMIUM",
    "PARLO_CHROMEDRIVER",
    "PARLO_WASM_TARGET_DIR",
    "PARLO_WIDGET_IDNA",
];

/// One unknown variable and the known one it most resembles, if any is close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEnv {
    pub name: String,
    pub nearest: Option<String>,
}

impl std::fmt::Display for UnknownEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.nearest {
            Some(n) => write!(f, "{} (did you mean {n}?)", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// The `PARLO_*` names in `present` that are not `known`, with their nearest known name.
pub fn unknown_env<'a>(
    present: impl IntoIterator<Item = &'a str>,
    known: &[&str],
) -> Vec<UnknownEnv> {
    let mut out: Vec<UnknownEnv> = present
        .into_iter()
        .filter(|n| n.starts_with("PARLO_") && !known.contains(n))
        .map(|name| {
            let nearest = known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(name, k), *k))
                .min()
                .filter(|(d, k)| *d <= 3.max(k.len() / 5))
                .map(|(_, k)| k.to_owned());
            UnknownEnv {
                name: name.to_owned(),
                nearest,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Warns about (development) or refuses (production) unknown `PARLO_*` variables.
pub fn check_env(unknown: &[UnknownEnv], production: bool) -> anyhow::Result<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    let list = unknown
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if production {
        bail!(
            "refusing to start: unknown environment variable(s) {list}; a misspelled setting \
             would silently keep its default. Fix or unset them"
        );
    }
    for u in unknown {
        tracing::warn!(variable = %u.name, nearest = u.nearest.as_deref().unwrap_or(""), "unknown PARLO_* environment variable; it is ignored");
    }
    eprintln!("parlo: WARNING: unknown environment variable(s) {list}; they are ignored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_names_the_nearest_known_variable() {
        let known = [
            "PARLO_LISTEN",
            "PARLO_PUBLIC_URL",
            "PARLO_BACKUP_RECIPIENTS",
        ];
        let u = unknown_env(
            [
                "PARLO_LISTN",
                "PARLO_LISTEN",
                "HOME",
                "PARLO_BACKUP_RECIPIENT",
                "PARLO_ZZZZZZZZZZZZZZZZZZZZZ",
            ],
            &known,
        );
        assert_eq!(
            u.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "PARLO_BACKUP_RECIPIENT (did you mean PARLO_BACKUP_RECIPIENTS?)",
                "PARLO_LISTN (did you mean PARLO_LISTEN?)",
                "PARLO_ZZZZZZZZZZZZZZZZZZZZZ",
            ]
        );
        assert!(check_env(&u, false).is_ok());
        let err = check_env(&u, true).unwrap_err().to_string();
        assert!(
            err.contains("PARLO_LISTN (did you mean PARLO_LISTEN?)"),
            "{err}"
        );
    }
}

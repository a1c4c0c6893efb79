//! Structured JSON logs that never carry a secret.
//!
//! Two fences: (1) nothing logs headers, bodies or query strings — request spans record the
//! method, the matched route template (never the path, which may carry a token) and the
//! request id only, and secret types (`SecretString`, keys,
//! `DatabaseUrl`) redact their own `Debug`; (2) every line passes through [`Redactor`] before
//! it is written, which masks the server's own key material and anything shaped like a
//! credential (`Bearer …`, `password=…`, `"api_key":"…"`, cookies), in case a future log
//! statement forgets fence one.

use std::io::Write;
use std::sync::{Arc, LazyLock, RwLock};

use regex::Regex;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{Config, LogFormat};

const MASK: &str = "[REDACTED]";

static CREDENTIAL_PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        // Authorization schemes with their credential.
        (
            Regex::new(r"(?i)\b(bearer|basic|token)(\s+|%20)[A-Za-z0-9._~+/=\-]{6,}").unwrap(),
            "$1 [REDACTED]",
        ),
        // key=value and "key": "value" for secret-sounding keys (JSON, query strings,
        // headers, form bodies, debug output).
        (
            Regex::new(
                r#"(?i)((?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[_-]?key|password|passwd|secret|token|resume|totp|master[_-]?keys?|token[_-]?keys?)["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;&}\]]+)"#,
            )
            .unwrap(),
            "$1\"[REDACTED]\"",
        ),
        // userinfo in URLs (postgres://user:password@host).
        (
            Regex::new(r"([a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@").unwrap(),
            "$1[REDACTED]@",
        ),
    ]
});

/// Masks secrets in log output. Cheap to clone; literal secrets can be registered at start.
#[derive(Clone, Default)]
pub struct Redactor {
    literals: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// Masks every occurrence of `secret` from now on (values shorter than 8 bytes are
    /// ignored: masking them would shred ordinary text).
    pub fn register(&self, secret: &str) {
        if secret.len() >= 8 {
            let mut l = self.literals.write().expect("redactor lock");
            if !l.iter().any(|s| s == secret) {
                l.push(secret.to_owned());
            }
        }
    }

    pub fn redact(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for s in self.literals.read().expect("redactor lock").iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        for (re, with) in CREDENTIAL_PATTERNS.iter() {
            if re.is_match(&out) {
                out = re.replace_all(&out, *with).into_owned();
            }
        }
        out
    }
}

/// A `MakeWriter` that redacts each formatted event before handing it to `inner`.
pub struct RedactingMakeWriter<W> {
    redactor: Redactor,
    inner: W,
}

impl<W> RedactingMakeWriter<W> {
    pub fn new(redactor: Redactor, inner: W) -> Self {
        Self { redactor, inner }
    }
}

/// Buffers one event and writes it redacted when dropped (the formatter writes each event
/// through a fresh writer).
pub struct RedactingWriter<W: Write> {
    redactor: Redactor,
    buf: Vec<u8>,
    inner: W,
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = self.redactor.redact(&String::from_utf8_lossy(&self.buf));
        let _ = self.inner.write_all(line.as_bytes());
        let _ = self.inner.flush();
    }
}

impl<'a, W> MakeWriter<'a> for RedactingMakeWriter<W>
where
    W: MakeWriter<'a>,
{
    type Writer = RedactingWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            redactor: self.redactor.clone(),
            buf: Vec::with_capacity(256),
            inner: self.inner.make_writer(),
        }
    }
}

/// Installs the global subscriber: JSON (or pretty) to stdout through the redactor.
pub fn init(config: &Config, redactor: Redactor) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log)
        .map_err(|e| anyhow::anyhow!("PARLO_LOG {:?} is not a valid filter: {e}", config.log))?;
    let writer = RedactingMakeWriter::new(redactor, std::io::stdout);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_credentials_by_shape() {
        let r = Redactor::default();
        for (input, secret) in [
            ("authorization: Bearer v1.abc.def-123", "v1.abc.def-123"),
            (r#"{"password":"hunter2 horse"}"#, "hunter2 horse"),
            ("api_key=sk-live-1234567890", "sk-live-1234567890"),
            ("cookie: parlo_session=abcdef123456", "abcdef123456"),
            ("postgres://app:s3cr3tpw@db/parlo", "s3cr3tpw"),
            (r#"{"resume":"rs_abcdefgh"}"#, "rs_abcdefgh"),
        ] {
            let out = r.redact(input);
            assert!(!out.contains(secret), "{input} -> {out}");
            assert!(out.contains(MASK), "{input} -> {out}");
        }
    }

    #[test]
    fn masks_registered_literals_and_keeps_ordinary_text() {
        let r = Redactor::default();
        r.register("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==");
        let out = r.redact("loaded key Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA== ok");
        assert_eq!(out, "loaded key [REDACTED] ok");
        let plain = r#"{"message":"request finished","status":200,"path":"/healthz"}"#;
        assert_eq!(r.redact(plain), plain);
    }
}

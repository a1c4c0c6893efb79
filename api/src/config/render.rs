//! `parlo config check`: the effective configuration as TOML-like text, every secret
//! redacted (database passwords replaced, keys shown only by id and origin).

use super::Config;

impl Config {
    /// The effective configuration as TOML-like text, secrets redacted.
    pub fn render_redacted(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k} = {v}\n"));
        line("env", format!("{:?}", self.env).to_lowercase());
        line("listen", quote(&self.listen.to_string()));
        line("public_url", quote(self.public_url.as_str()));
        line("data_dir", quote(&self.data_dir.display().to_string()));
        line("database_url", quote(&self.database_url.redacted()));
        line(
            "migration_database_url",
            self.migration_database_url
                .as_ref()
                .map_or("(unset)".to_owned(), |u| quote(&u.redacted())),
        );
        line("key_file", quote(&self.key_file.display().to_string()));
        line("master_keys", self.key_source.describe_master());
        line("token_keys", self.key_source.describe_token());
        line(
            "backup_signing_key",
            self.key_source.describe_backup_signing(),
        );
        line(
            "platform_mistral_key",
            if self.platform_mistral_key.is_some() {
                "\"REDACTED (set)\""
            } else {
                "(unset)"
            }
            .to_owned(),
        );
        line(
            "dist_dir",
            self.dist_dir
                .as_ref()
                .map_or("(built in)".to_owned(), |d| quote(&d.display().to_string())),
        );
        line("mistral_base_url", quote(self.mistral_base_url.as_str()));
        line(
            "upstream_connect_timeout_secs",
            self.upstream_timeouts.connect.as_secs().to_string(),
        );
        line(
            "upstream_read_timeout_secs",
            self.upstream_timeouts.read.as_secs().to_string(),
        );
        line("max_body_bytes", self.max_body_bytes.to_string());
        line(
            "trusted_proxies",
            format!(
                "{:?}",
                self.trusted_proxies
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
        line(
            "rate_limit_ip_per_minute",
            self.rate_limit_ip_per_minute.to_string(),
        );
        line(
            "rate_limit_conversation_per_minute",
            self.rate_limit_conversation_per_minute.to_string(),
        );
        line("log", quote(&self.log));
        line(
            "log_format",
            format!("{:?}", self.log_format).to_lowercase(),
        );
        line(
            "subprocessors",
            format!("{} entries", self.subprocessors.len()),
        );
        line(
            "security_contact",
            self.security_contact
                .as_deref()
                .map_or("(unset)".to_owned(), quote),
        );
        line(
            "legal_dir",
            self.legal_dir
                .as_ref()
                .map_or("(shipped templates)".to_owned(), |d| {
                    quote(&d.display().to_string())
                }),
        );
        line(
            "shutdown_grace_secs",
            self.shutdown_grace.as_secs().to_string(),
        );
        let l = &self.lifecycle;
        line(
            "retention_interval_secs",
            l.retention_interval.map_or(0, |d| d.as_secs()).to_string(),
        );
        line("retention_batch_rows", l.retention_batch_rows.to_string());
        line(
            "retention_pause_ms",
            l.retention_pause.as_millis().to_string(),
        );
        line("backup_dir", quote(&l.backup_dir.display().to_string()));
        line("backup_recipients", format!("{:?}", l.backup_recipients));
        line(
            "backup_verify_key",
            format!(
                "{:?}",
                l.backup_verify_keys
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
        line(
            "backup_command",
            l.backup_command
                .as_deref()
                .map_or("(unset)".to_owned(), quote),
        );
        line(
            "backup_keep_days",
            l.backup_keep_days.unwrap_or(0).to_string(),
        );
        line(
            "backup_interval_hours",
            l.backup_interval
                .map_or(0, |d| d.as_secs() / 3600)
                .to_string(),
        );
        line(
            "backup_database_url",
            l.backup_database_url
                .as_ref()
                .map_or("(unset)".to_owned(), |u| quote(&u.redacted())),
        );
        line(
            "smtp_url",
            if self.mail.smtp_url.is_some() {
                "\"REDACTED (set)\""
            } else {
                "(unset: development writes mail to <data dir>/outbox/)"
            }
            .to_owned(),
        );
        line("mail_from", quote(&self.mail.from.to_string()));
        line(
            "mail_retry_secs",
            self.mail.retry_base.as_secs().to_string(),
        );
        line(
            "audit_head_file",
            quote(&l.audit_head_file.display().to_string()),
        );
        let k = &self.knowledge;
        line(
            "knowledge_max_documents",
            k.limits.max_documents.to_string(),
        );
        line(
            "knowledge_max_mb",
            (k.limits.max_bytes / (1024 * 1024)).to_string(),
        );
        line("knowledge_max_chunks", k.limits.max_chunks.to_string());
        line(
            "knowledge_poll_ms",
            k.poll.map_or(0, |d| d.as_millis()).to_string(),
        );
        line(
            "knowledge_fetch_allow",
            format!(
                "{:?}",
                k.fetch_allow
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
        );
        line("github_api_url", quote(k.github_api_url.as_str()));
        out
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

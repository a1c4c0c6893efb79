//! The `PARLO_*` names this binary knows: every flag's variable (read from the clap command,
//! so a new setting is known without a list to update) and the secrets and tooling names of
//! `config::OTHER_KNOWN_ENV`. `parlo serve` checks the environment against them at start.

use crate::config::{CREDENTIAL_SETTINGS, Config, OTHER_KNOWN_ENV, check_env, unknown_env};

fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        if let Some(e) = a.get_env() {
            out.push(e.to_string_lossy().into_owned());
        }
    }
    for s in cmd.get_subcommands() {
        walk(s, out);
    }
}

/// Every `PARLO_*` name `cli` (the whole command line) and the rest of the binary read.
pub(super) fn known_env(cli: &clap::Command) -> Vec<String> {
    let mut out: Vec<String> = OTHER_KNOWN_ENV
        .iter()
        .copied()
        .chain(CREDENTIAL_SETTINGS.iter().map(|c| c.env))
        .map(str::to_owned)
        .collect();
    walk(cli, &mut out);
    out.sort();
    out.dedup();
    out
}

/// Reports misspelled `PARLO_*` variables of this process's environment (refuses in
/// production).
pub(super) fn check_environment(config: &Config, known: &[String]) -> anyhow::Result<()> {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let present: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    check_env(
        &unknown_env(present.iter().map(String::as_str), &known),
        config.is_production(),
    )
}

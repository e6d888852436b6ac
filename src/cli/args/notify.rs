//! The flags of reporters (`--notify`): which plugins are told about the
//! run, and each one's events, settings and hosts, named by the reporter's
//! name (its file name without `.wasm`, or a `[[notify]]` block's `name`).
//! Parsed by the plan, not clap: a mistyped secret is never echoed.

use std::path::PathBuf;

use clap::Args;

/// Reporters: plugins told about the run once every rotation has ended.
#[derive(Clone, Debug, Default, Args)]
pub struct NotifyArgs {
    /// A reporter plugin, told about the run once every rotation ended (repeatable)
    ///
    /// A WebAssembly component of the world keyrot:reporter/run-reporter.
    /// It is named by its file name without .wasm in the --notify-* flags
    /// below. A job file's [[notify]] blocks give each its own settings.
    // In --help only: -h is a page (tests/usability.rs).
    #[arg(
        long,
        value_name = "PLUGIN",
        hide_short_help = true,
        help_heading = "Notify"
    )]
    pub notify: Vec<PathBuf>,

    /// The events a reporter is told about [default: failed,needs-attention,warning,rotated]
    ///
    /// Any of rotated, failed, needs-attention, warning, skipped, exempt,
    /// would-rotate (repeatable, one per reporter).
    #[arg(
        long,
        value_name = "NAME:EVENT[,EVENT]",
        hide_short_help = true,
        help_heading = "Notify"
    )]
    pub notify_on: Vec<String>,

    /// A setting of a reporter, read through wasi:config (repeatable)
    #[arg(
        long,
        value_name = "NAME:KEY=VALUE",
        hide_short_help = true,
        help_heading = "Notify"
    )]
    pub notify_config: Vec<String>,

    /// A secret setting of a reporter: NAME:KEY=env:VAR or NAME:KEY=file:PATH
    #[arg(
        long,
        value_name = "NAME:KEY=env:VAR|NAME:KEY=file:PATH",
        hide_short_help = true,
        help_heading = "Notify"
    )]
    pub notify_secret: Vec<String>,

    /// Let a reporter make HTTP requests to this exact host (repeatable)
    ///
    /// HOST as in --allow-host: HOST[:PORT] is https, http://HOST:PORT
    /// plain HTTP.
    #[arg(
        long,
        value_name = "NAME:HOST",
        hide_short_help = true,
        help_heading = "Notify"
    )]
    pub notify_allow_host: Vec<String>,

    /// Exit 5 when a reporter failed, though every rotation went well
    ///
    /// Without it a reporter's failure is only reported: it never changes
    /// a rotation, nor the exit code.
    #[arg(long, hide_short_help = true, help_heading = "Notify")]
    pub notify_required: bool,
}

/// Splits `NAME:REST` as the --notify-* flags take it.
pub fn split_name<'a>(flag: &str, value: &'a str) -> Result<(&'a str, &'a str), String> {
    value
        .split_once(':')
        .filter(|(name, rest)| !name.trim().is_empty() && !rest.is_empty())
        .map(|(name, rest)| (name.trim(), rest))
        .ok_or_else(|| {
            format!(
                "--{flag} takes NAME:..., NAME being a reporter's name (its file name without \
                 .wasm, or a [[notify]] block's name)"
            )
        })
}

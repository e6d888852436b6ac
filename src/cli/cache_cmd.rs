//! `keyrot cache list` and `keyrot cache clean`: the compiled-plugin cache
//! grows by tens of MB per large plugin version; these show and reclaim it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use keyrot::CacheMode;
use keyrot::host::cache::{CacheEntry, list_entries, remove_entries};

use super::Cli;
use super::args::{CacheCommand, Output};

/// Runs a `keyrot cache` subcommand.
pub fn run(cli: &Cli, command: &CacheCommand) -> anyhow::Result<u8> {
    let dir = cache_dir()?;
    let entries = list_entries(&dir)
        .with_context(|| format!("cannot read the cache directory {}", dir.display()))?;
    let mut stdout = std::io::stdout().lock();
    match command {
        CacheCommand::List => match cli.output {
            Output::Json => {
                let json = serde_json::json!({ "dir": dir, "entries": entries });
                writeln!(stdout, "{}", serde_json::to_string_pretty(&json)?)?;
            }
            Output::Text | Output::Csv | Output::Prometheus => {
                list_text(&mut stdout, &dir, &entries)?
            }
        },
        CacheCommand::Clean { older_than } => {
            let chosen: Vec<CacheEntry> = entries
                .into_iter()
                .filter(|e| older_than.is_none_or(|age| e.age_secs >= age.as_secs()))
                .collect();
            let freed = remove_entries(&chosen)
                .with_context(|| format!("cannot clean the cache directory {}", dir.display()))?;
            match cli.output {
                Output::Json => {
                    let json = serde_json::json!({
                        "dir": dir, "removed": chosen, "freed_bytes": freed,
                    });
                    writeln!(stdout, "{}", serde_json::to_string_pretty(&json)?)?;
                }
                Output::Text | Output::Csv | Output::Prometheus => writeln!(
                    stdout,
                    "removed {} from {} ({} freed)",
                    plural(chosen.len(), "entry", "entries"),
                    dir.display(),
                    size(freed)
                )?,
            }
        }
    }
    stdout.flush()?;
    Ok(0)
}

/// The directory `keyrot` would cache in, whether or not it exists yet.
fn cache_dir() -> anyhow::Result<PathBuf> {
    match CacheMode::user_default() {
        CacheMode::Dir(dir) => Ok(dir),
        CacheMode::Disabled => {
            anyhow::bail!("no cache directory: set KEYROT_CACHE_DIR (or HOME, for ~/.cache/keyrot)")
        }
    }
}

fn list_text(
    out: &mut impl Write,
    dir: &std::path::Path,
    entries: &[CacheEntry],
) -> anyhow::Result<()> {
    let total: u64 = entries.iter().map(|e| e.size).sum();
    writeln!(
        out,
        "{}: {}, {}",
        dir.display(),
        plural(entries.len(), "entry", "entries"),
        size(total)
    )?;
    if entries.is_empty() {
        return Ok(());
    }
    writeln!(out, "{:<64}  {:>10}  {:>5}", "PLUGIN SHA256", "SIZE", "AGE")?;
    for entry in entries {
        let sha = entry
            .plugin_sha256
            .as_deref()
            .unwrap_or("(unfinished write)");
        writeln!(
            out,
            "{sha:<64}  {:>10}  {:>5}",
            size(entry.size),
            age(Duration::from_secs(entry.age_secs))
        )?;
    }
    Ok(())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// 1536 → "1.5 KiB".
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The largest whole unit: 45s, 12m, 3h, 2d.
fn age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(37 << 20), "37.0 MiB");
        assert_eq!(age(Duration::from_secs(59)), "59s");
        assert_eq!(age(Duration::from_secs(7200)), "2h");
        assert_eq!(age(Duration::from_secs(3 * 86400)), "3d");
    }
}

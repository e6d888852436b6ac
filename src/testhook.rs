//! Failpoints and overrides for tests: pick the instant of a real crash,
//! move the clock, stand two machines on one host.
//!
//! Everything here does nothing unless keyrot is built with the `test-hooks`
//! cargo feature, which only the test suite turns on (a self dev-dependency
//! in `Cargo.toml`); release builds never have it, so the environment
//! variables below mean nothing to them. With the feature:
//!
//! - `KEYROT_TEST_HOOK=<point>:<action>[,...]` arms named points: `panic`
//!   panics there; `pause` prints `keyrot-test-hook: paused at <point>` to
//!   stderr and sleeps forever, so a test can SIGKILL keyrot at exactly that
//!   step; `wait` prints the same line and then waits until the file named
//!   by `KEYROT_TEST_RESUME` exists, so a test can let two runs interleave
//!   in a chosen order. `*:trace` prints `keyrot-test-hook: passed <point>`
//!   at every point the run passes, so a test can list them.
//! - `KEYROT_TEST_CLOCK_OFFSET=<seconds>` (may be negative) moves keyrot's
//!   idea of now ([`now_offset`]), as a machine with a wrong clock would.
//! - `KEYROT_TEST_OWNER=<host:pid>` replaces the host and pid in the run's
//!   owner id, as two containers with one hostname and PID 1 would share.
//! - `KEYROT_TEST_LEASE=<N>s|<N>ms` shortens the IAM journal's lease.

/// Marks a failpoint named `point`. A no-op in normal builds.
pub fn hit(point: &str) {
    #[cfg(feature = "test-hooks")]
    armed::hit(point);
    #[cfg(not(feature = "test-hooks"))]
    let _ = point;
}

/// Seconds to add to the system clock (0 in normal builds).
pub fn now_offset() -> i64 {
    #[cfg(feature = "test-hooks")]
    return armed::var("KEYROT_TEST_CLOCK_OFFSET").map_or(0, |v| v.parse().unwrap_or(0));
    #[cfg(not(feature = "test-hooks"))]
    0
}

/// The `host:pid` part of the owner id, if a test replaces it.
pub fn owner() -> Option<String> {
    #[cfg(feature = "test-hooks")]
    return armed::var("KEYROT_TEST_OWNER");
    #[cfg(not(feature = "test-hooks"))]
    None
}

/// The IAM journal's lease, if a test shortens it.
pub fn lease() -> Option<std::time::Duration> {
    #[cfg(feature = "test-hooks")]
    return armed::var("KEYROT_TEST_LEASE").and_then(|v| {
        let ms = match v.strip_suffix("ms") {
            Some(ms) => ms.parse().ok()?,
            None => v.trim_end_matches('s').parse::<u64>().ok()? * 1000,
        };
        Some(std::time::Duration::from_millis(ms))
    });
    #[cfg(not(feature = "test-hooks"))]
    None
}

#[cfg(feature = "test-hooks")]
mod armed {
    use std::io::Write;
    use std::time::Duration;

    pub(super) fn var(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    pub(super) fn hit(point: &str) {
        let Some(spec) = var("KEYROT_TEST_HOOK") else {
            return;
        };
        for entry in spec.split(',') {
            let Some((name, action)) = entry.trim().split_once(':') else {
                continue;
            };
            if name == "*" && action == "trace" {
                let mut stderr = std::io::stderr();
                let _ = writeln!(stderr, "keyrot-test-hook: passed {point}");
                let _ = stderr.flush();
                continue;
            }
            if name != point {
                continue;
            }
            match action {
                "panic" => panic!("keyrot-test-hook: panic at {point}"),
                "pause" | "wait" => {
                    // The test reads this line, then kills keyrot or lets it
                    // go on: a failed write must not stop the pause.
                    let mut stderr = std::io::stderr();
                    let _ = writeln!(stderr, "keyrot-test-hook: paused at {point}");
                    let _ = stderr.flush();
                    let resume = var("KEYROT_TEST_RESUME").filter(|_| action == "wait");
                    let pause = || loop {
                        if resume
                            .as_deref()
                            .is_some_and(|file| std::path::Path::new(file).exists())
                        {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    };
                    // The paused step holds a runtime thread: hand that
                    // thread's queued tasks (a lease's renewal) to the others,
                    // as a call that is really slow would leave them running.
                    let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|h| {
                        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                    });
                    if multi_thread {
                        tokio::task::block_in_place(pause)
                    } else {
                        pause()
                    }
                }
                _ => {}
            }
        }
    }
}

//! Test-only hooks at named points of a run, to pick the instant of a real
//! `kill -9` (or a panic) in end-to-end tests. Compiled to nothing unless
//! the `test-hooks` feature is on, which only the test suite enables.
//!
//! `KEYROT_TEST_HOOK=<point>:<action>[,<point>:<action>...]`, where
//! `pause` prints `keyrot-test-hook: paused at <point>` to stderr and waits
//! forever (for the test to kill the process) and `panic` panics.

/// Marks a point of a run.
#[cfg(feature = "test-hooks")]
pub fn hit(point: &str) {
    use std::io::Write;
    let Ok(spec) = std::env::var("KEYROT_TEST_HOOK") else {
        return;
    };
    for hook in spec.split(',') {
        match hook.split_once(':') {
            Some((p, "pause")) if p == point => {
                let _ = writeln!(std::io::stderr(), "keyrot-test-hook: paused at {point}");
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            Some((p, "panic")) if p == point => panic!("test hook: panic at {point}"),
            _ => {}
        }
    }
}

/// Marks a point of a run (a no-op in this build).
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn hit(_point: &str) {}

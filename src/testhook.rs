//! Failpoints for tests: pick the instant of a real crash or panic.
//!
//! [`hit`] does nothing unless keyrot is built with the `test-hooks` cargo
//! feature, which only the test suite turns on (a self dev-dependency in
//! `Cargo.toml`); release builds never have it. With the feature, the
//! environment variable `KEYROT_TEST_HOOK=<point>:<action>[,...]` arms named
//! points: `panic` panics there; `pause` prints
//! `keyrot-test-hook: paused at <point>` to stderr and sleeps forever, so a
//! test can SIGKILL keyrot at exactly that step.

/// Marks a failpoint named `point`. A no-op in normal builds.
pub fn hit(point: &str) {
    #[cfg(feature = "test-hooks")]
    armed::hit(point);
    #[cfg(not(feature = "test-hooks"))]
    let _ = point;
}

#[cfg(feature = "test-hooks")]
mod armed {
    use std::io::Write;

    pub(super) fn hit(point: &str) {
        let Ok(spec) = std::env::var("KEYROT_TEST_HOOK") else {
            return;
        };
        for entry in spec.split(',') {
            let Some((name, action)) = entry.trim().split_once(':') else {
                continue;
            };
            if name != point {
                continue;
            }
            match action {
                "panic" => panic!("keyrot-test-hook: panic at {point}"),
                "pause" => {
                    // The test reads this line, then kills keyrot: a failed
                    // write must not stop the pause.
                    let mut stderr = std::io::stderr();
                    let _ = writeln!(stderr, "keyrot-test-hook: paused at {point}");
                    let _ = stderr.flush();
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(3600));
                    }
                }
                _ => {}
            }
        }
    }
}

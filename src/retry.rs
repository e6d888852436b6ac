//! One bounded retry helper for calls that must not give up on the first
//! transient error: deleting a key nobody holds, retiring an old key,
//! creating a key IAM throttled, waiting for a new key to start working.

use std::future::Future;
use std::time::{Duration, Instant};

/// An error that knows whether trying again may help.
pub trait Retryable {
    /// Whether retrying the same call may succeed.
    fn is_transient(&self) -> bool;
}

/// How hard to retry a transient failure.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time up to `max_delay`,
    /// with jitter (each wait is between half and all of it).
    pub initial_delay: Duration,
    /// The longest single wait.
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            deadline: Duration::from_secs(60),
        }
    }
}

/// What a retried call came to, and how many attempts it took.
#[derive(Debug)]
pub struct Attempts<T, E> {
    /// The last result.
    pub result: Result<T, E>,
    /// How many times the call was made.
    pub count: u32,
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails with an error that is not
    /// transient, or the attempts or deadline run out. Returns the last
    /// error.
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, E>
    where
        E: Retryable + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_counted(op).await.result
    }

    /// [`RetryPolicy::run`], also saying how many attempts were made.
    pub async fn run_counted<T, E, F, Fut>(&self, mut op: F) -> Attempts<T, E>
    where
        E: Retryable + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let mut delay = self.initial_delay;
        let mut count = 1;
        loop {
            let result = op().await;
            match &result {
                Err(err) if err.is_transient() && count < self.attempts => {
                    let wait = jitter(delay);
                    if start.elapsed() + wait >= self.deadline {
                        return Attempts { result, count };
                    }
                    tracing::debug!(attempt = count, error = %err, "transient error, retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(self.max_delay);
                    count += 1;
                }
                _ => return Attempts { result, count },
            }
        }
    }
}

/// A wait between half and all of `delay`, so many clients throttled at
/// once do not come back in step.
fn jitter(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(Instant::now());
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    delay.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::iam::{IamError, IamErrorKind};

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            deadline: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = Cell::new(0);
        let attempts = quick()
            .run_counted(|| {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(IamError::new(IamErrorKind::Throttled, "throttled"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(attempts.result.unwrap(), 3);
        assert_eq!(attempts.count, 3);
    }

    #[tokio::test]
    async fn stops_at_the_attempt_limit_with_the_last_error() {
        let calls = Cell::new(0);
        let result: Result<(), _> = quick()
            .run(|| {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Err(IamError::new(IamErrorKind::NoAnswer, format!("try {n}"))) }
            })
            .await;
        assert_eq!(result.unwrap_err().message, "try 3");
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn stops_at_the_deadline() {
        let policy = RetryPolicy {
            attempts: 1000,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(20),
            deadline: Duration::from_millis(100),
        };
        let calls = Cell::new(0);
        let result: Result<(), _> = policy
            .run(|| {
                calls.set(calls.get() + 1);
                async { Err(IamError::new(IamErrorKind::Throttled, "throttled")) }
            })
            .await;
        assert!(result.is_err());
        assert!(calls.get() < 20, "{} calls", calls.get());
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = Cell::new(0);
        let result: Result<(), _> = quick()
            .run(|| {
                calls.set(calls.get() + 1);
                async { Err(IamError::new(IamErrorKind::AccessDenied, "denied")) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn jitter_stays_between_half_and_all() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }
}

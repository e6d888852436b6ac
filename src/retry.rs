//! One bounded retry helper for IAM calls that must not give up on the first
//! transient error (deleting a key nobody holds, retiring an old key).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::iam::IamError;

/// How hard to retry a transient IAM failure.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time up to `max_delay`.
    pub initial_delay: Duration,
    /// The longest single wait.
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            deadline: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails with a non-transient error, or the
    /// attempts or deadline run out. Returns the last error.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, IamError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, IamError>>,
    {
        let start = Instant::now();
        let mut delay = self.initial_delay;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err)
                    if err.is_transient()
                        && attempt < self.attempts
                        && start.elapsed() + delay < self.deadline =>
                {
                    tracing::debug!(attempt, error = %err, "transient IAM error, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_delay);
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::iam::IamErrorKind;

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
        let result = quick()
            .run(|| {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(IamError::new(IamErrorKind::Transient, "throttled"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn stops_at_the_attempt_limit_with_the_last_error() {
        let calls = Cell::new(0);
        let result: Result<(), _> = quick()
            .run(|| {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Err(IamError::new(IamErrorKind::Transient, format!("try {n}"))) }
            })
            .await;
        assert_eq!(result.unwrap_err().message, "try 3");
        assert_eq!(calls.get(), 3);
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
}

//! What an SDK error means for a rotation: did the call happen, may it
//! have, is it worth retrying ([`IamErrorKind`]).

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};

use crate::iam::{IamError, IamErrorKind};
use crate::text::error_chain;

/// Classifies an SDK error. Only a definite error answer from AWS, or a
/// request that was never sent, counts as "did not happen": a timeout, a
/// dropped connection, an unreadable answer or a 5xx may hide a call that
/// was applied.
pub(super) fn iam_error<E, R>(err: SdkError<E, R>) -> IamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    // An answer whose body could not be read still has a status: a 403
    // from a proxy, or an error body in another shape, is still "denied".
    let status = err.raw_response().and_then(http_status);
    let denied_unread = err.code().is_none() && matches!(status, Some(401 | 403));
    let kind = match &err {
        _ if denied_unread => IamErrorKind::AccessDenied,
        SdkError::ConstructionFailure(_) => IamErrorKind::Other,
        SdkError::ServiceError(service) => match err.code() {
            Some("NoSuchEntity") => IamErrorKind::NoSuchEntity,
            Some("LimitExceeded") => IamErrorKind::LimitExceeded,
            Some(
                "AccessDenied"
                | "AccessDeniedException"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "UnrecognizedClientException",
            ) => IamErrorKind::AccessDenied,
            Some(
                "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestThrottled",
            ) => IamErrorKind::Throttled,
            Some(
                "ServiceFailure" | "ServiceUnavailable" | "InternalFailure" | "RequestExpired",
            ) => IamErrorKind::NoAnswer,
            _ => match http_status(service.raw()) {
                Some(429) => IamErrorKind::Throttled,
                Some(500..=599) => IamErrorKind::NoAnswer,
                _ => IamErrorKind::Other,
            },
        },
        // Timeouts, dispatch failures (a reset, a closed connection),
        // answers that could not be read, and anything new.
        _ => IamErrorKind::NoAnswer,
    };
    let message = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ if denied_unread => format!(
            "AccessDenied (HTTP {}; the answer's body could not be read: {})",
            status.unwrap_or_default(),
            error_chain(&err)
        ),
        _ => error_chain(&err),
    };
    // No credentials is never a lost answer: say what to give keyrot.
    if no_credentials(&message) {
        return IamError::new(
            IamErrorKind::AccessDenied,
            format!(
                "no usable AWS credentials (give some with --profile NAME or AWS_PROFILE, or \
                 set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; `aws sts \
                 get-caller-identity` shows what the same chain finds): {message}"
            ),
        );
    }
    IamError::new(kind, message)
}

/// Whether an SDK error says no credentials could be found or loaded.
fn no_credentials(message: &str) -> bool {
    [
        "loading credentials",
        "credential provider was not enabled",
        "no credentials found",
        "failed to load credentials",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// The HTTP status of a raw response, where the SDK's type has one.
fn http_status<R: std::fmt::Debug + 'static>(raw: &R) -> Option<u16> {
    let any = raw as &dyn std::any::Any;
    any.downcast_ref::<aws_smithy_runtime_api::http::Response>()
        .map(|r| r.status().as_u16())
}

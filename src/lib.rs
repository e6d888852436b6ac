//! keyrot rotates AWS IAM access keys and hands each new key to a
//! new-key handler, typically a sandboxed WebAssembly component.
//!
//! The library works on its own: build a [`KeyRotator`] from an [`Iam`]
//! implementation ([`AwsIam`] for real AWS) and a [`NewKeyHandler`]
//! ([`WasmHandler`] for a plugin, or your own Rust type), then call
//! [`KeyRotator::rotate_keys`]. The `keyrot` binary is a thin layer over this.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use keyrot::{AwsIam, AwsOptions, KeyRotator, PluginLimits, Settings, WasmHandler};
//!
//! let handler = WasmHandler::load(
//!     "github.wasm".as_ref(),
//!     Settings::new([("repo".to_string(), "octo/app".to_string())]),
//!     PluginLimits::default(),
//! )
//! .await?;
//! let iam = AwsIam::from_options(&AwsOptions::default()).await;
//! let report = KeyRotator::new(iam, handler).rotate_keys("ci-bot").await?;
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok(())
//! # }
//! ```

pub mod aws;
pub mod dirs;
pub mod fleet;
pub mod fsutil;
pub mod grants;
pub mod handler;
pub mod host;
pub mod iam;
pub mod input;
pub mod journal;
pub mod kit;
pub mod notify;
pub mod oci;
pub mod org;
pub mod retry;
pub mod rotation;
pub mod secret;
pub mod testhook;
pub mod text;
pub mod time;
pub mod verify;

pub use aws::{AwsIam, AwsOptions, StsVerifier, caller_identity, connect};
pub use fleet::{Fleet, FleetSummary};
pub use grants::Grants;
pub use handler::{
    HandlerError, HandlerErrorKind, HandlerLog, LogLevel, LogLine, NewKeyHandler, Rotation,
};
pub use host::{
    CacheMode, LoadOptions, Plugin, PluginError, PluginLimits, Sandbox, Settings, WasmHandler,
};
pub use iam::{
    AccessKeyInfo, Iam, IamError, IamErrorKind, KeyLastUsed, KeyStatus, MemoryIam, NewAccessKey,
};
pub use journal::{FileJournal, IamTagJournal, StateDir};
pub use retry::{RetryPolicy, Retryable};
pub use rotation::{
    CallerIdentity, GiveUp, Interrupt, Journal, JournalError, JournalRecord, KeyRotator,
    NewKeyState, NoJournal, OldKeyAction, Outcome, Phase, RetireMode, RotateOptions, RotationError,
    RotationFailure, RotationReport, Step,
};
pub use secret::SecretAccessKey;
pub use verify::KeyVerifier;

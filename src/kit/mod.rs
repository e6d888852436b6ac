//! The handler kit: what a team writing its first handler needs beyond
//! the contract.
//!
//! - [`template`]: `keyrot plugin new`, a small, honest, buildable handler
//!   project per language, with the current contract (`wit/`);
//! - [`conformance`]: `keyrot plugin test`, a handler run through real
//!   rotations in keyrot's own sandbox against IAM in memory
//!   ([`MemoryIam`](crate::iam::MemoryIam)), then checked against each rule
//!   of the contract, as a report of passed, failed and skipped checks;
//! - `scan`: a secret found in a plugin's text in the forms careless code
//!   writes it (raw, JSON-escaped, URL-encoded, base64, hex).

pub mod conformance;
mod scan;
pub mod template;

pub use self::scan::Form;

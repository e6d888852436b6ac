//! keyrot's integration tests, one binary so the harness (moto, fixture
//! plugins built once) is shared.
//!
//! - `rotation`: the rotation's every failure edge, on a fault-injecting fake
//!   of the `Iam` seam.
//! - `cli`: the real binary against moto with real plugin components.
//! - `grants`: outbound HTTP, directories, secrets, caching, job files.
//! - `sandbox`: hostile plugins attacking the sandbox.
//! - `github`, `credentials_file`, `gitlab`, `circleci`, `dotenv`: each
//!   handler against its fake destination.
//! - `readme`: the README's handler guide is the code the tests build.
//! - `examples`: the IAM policies in `examples/` suffice, with IAM auth on.
//! - `usability`: help, colour, errors that say what to do, inspect, cache.

mod circleci;
mod cli;
mod credentials_file;
mod dotenv;
mod examples;
mod fake;
mod github;
mod github_server;
mod gitlab;
mod grants;
mod readme;
mod rotation;
mod sandbox;
mod usability;
mod util;

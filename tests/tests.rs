//! keyrot's integration tests, one binary so the harness (moto, fixture
//! plugins built once) is shared.
//!
//! - `rotation`: the rotation's every failure edge, on a fault-injecting fake
//!   of the `Iam` seam.
//! - `cli`: the real binary against moto with real plugin components.
//! - `grants`: outbound HTTP, directories, secrets, caching, job files, and
//!   a handler's declared needs (wider grants refused, needs named, inspect).
//! - `oci`: plugins pushed to, pulled from and signed in a real OCI registry,
//!   and in a hostile one of the tests' own (`hostile_registry`), whose
//!   HTTPS certificate comes from a throwaway CA (`test_ca`).
//! - `sandbox`: hostile plugins attacking the sandbox.
//! - `hardening`: broken output streams, the cache, FIFOs, limits.
//! - `github`, `credentials_file`, `gitlab`, `circleci`, `dotenv`: each
//!   handler against its fake destination.
//! - `aws_stores`: the Secrets Manager and SSM handlers against moto with
//!   IAM auth on, their requests signed by the host (`--aws-sign`).
//! - `kubernetes_secret`, `vault`, `terraform_cloud`: the secret-store
//!   handlers against fakes of the Kubernetes API (over HTTPS from a
//!   private CA too: `--allow-host-ca`), Vault's KV v2 and
//!   HCP Terraform's variables that follow their API docs (kept fields,
//!   409 and check-and-set conflicts, 429s, refused tokens, a kill after
//!   `handle` finished by the same command).
//! - `schedule`: unattended runs: verification, kill -9 and resume, locks,
//!   grace mode, `--older-than`, status, dry runs, and wire faults from the
//!   `proxy` in front of moto.
//! - `promise`: the promise under bad luck: failed reruns keep the journal,
//!   a create IAM applies late, forged and stale records, two machines on
//!   one user, leases renewed and lost, a new key deleted behind our back.
//! - `resume`: a kill at every step boundary of a rotation, then the same
//!   command with no flag, converges with each strict file handler
//!   (aws-credentials-file, dotenv), a second kill of the rerun too:
//!   the abandoned keys, carried in the journal.
//! - `drain`: `--retire drain` with a real consumer of the old key: kept
//!   while used, deactivated when quiet, deleted after the grace, a person
//!   called past the timeout, `drain undo`, kills at each drain step.
//! - `fleet`: many users in one run: users files, `--all-users`, two
//!   accounts, a job file's targets, throttling, Ctrl-C.
//! - `fleet_fake`: the library's fleet in process on the fake IAM (Ctrl-C
//!   before a turn, a panicking task, refused input, the file journal's lock).
//! - `contract`: plugins of contract 0.4.0 (told the account id and, after
//!   kills, every key left behind), 0.3.0 (the newest such key), 0.2.0 and
//!   0.1.0 (still loaded) through the same binary, and `inspect` naming each.
//! - `readme`: the handler guide's examples are the code the tests build,
//!   and no documented command changes real keys without saying so.
//! - `docs`: `docs/reference.md` lists exactly the flags of every command's
//!   `--help`, the job-file keys, the environment and the report fields.
//! - `troubleshooting`: each error the README quotes is what the binary
//!   prints.
//! - `kubernetes`: the CronJob example runs with its read-only root, mounts,
//!   user and environment.
//! - `examples`: the IAM policies in `examples/` suffice, with IAM auth on.
//! - `org`: whole AWS Organizations on moto: rules per OU, exemptions by
//!   tag, group, account and OU, owners, `status --org` in text, JSON and
//!   CSV, shards, and an organization that cannot be listed or entered.
//! - `metrics`: `status --output prometheus` and a run's `--metrics-file`,
//!   read by `prometheus_client`'s parser and checked against IAM.
//! - `first_run`: what a new user hit (ignored flags, messages naming the
//!   wrong thing, two exit codes for one failure, journal commands needing
//!   AWS, self-rotation with the IAM journal, a lock wait Ctrl-C stops).
//! - `usability`: help, colour, errors that say what to do, inspect, cache.
//! - `plugin_kit`: `keyrot plugin new` in each language, built with the
//!   command it prints, passes `keyrot plugin test`; a handler breaking one
//!   rule at a time (the `breaks` fixture) fails that rule's check; an HTTP
//!   handler tested against its author's fake.
//! - `notify`: reporters (`--notify`, `[[notify]]`) against local fakes of
//!   their services (`notify_fakes`: a webhook receiver, Slack's
//!   chat.postMessage, PagerDuty's Events API v2): the events each filter
//!   selects, failing, hanging and trapping reporters, `--notify-required`,
//!   a Python reporter, bad input, and no secret reaching any of them.

mod aws_stores;
mod circleci;
mod cli;
mod contract;
mod credentials_file;
mod docs;
mod dotenv;
mod drain;
mod examples;
mod fake;
mod first_run;
mod fleet;
mod fleet_fake;
mod github;
mod github_server;
mod gitlab;
mod grants;
mod hardening;
mod hostile_registry;
mod kubernetes;
mod kubernetes_secret;
mod metrics;
mod notify;
mod notify_fakes;
mod oci;
mod org;
mod plugin_kit;
mod promise;
mod proxy;
mod readme;
mod resume;
mod rotation;
mod sandbox;
mod schedule;
mod terraform_cloud;
mod test_ca;
mod troubleshooting;
mod usability;
mod util;
mod vault;

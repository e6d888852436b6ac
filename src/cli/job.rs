//! Job files: one reviewed TOML definition of a rotation (plugin, users,
//! settings, grants, limits) that a team can share; flags override it.
//! Relative paths in it (plugin, users file, directories, `file:` secrets)
//! are relative to the file.
//!
//! A fleet job has `[[target]]` blocks, each a set of users with their own
//! plugin, settings, grants and `[aws]` options (another account through
//! `role-arn`, say). Top-level values are defaults for every target: a
//! target's own value replaces a default, and the `config`, `secrets` and
//! `aws` tables are merged key by key.
//!
//! ```toml
//! plugin = "github.wasm"            # relative to this file, or oci://…@sha256:…
//! plugin-sha256 = "4f0c…"
//! plugin-keys = ["team.pub"]        # an oci:// plugin must be signed by one
//! allow-unpinned = false            # refuse an oci:// tag without a digest
//! registry-timeout = "3m"           # each registry operation's deadline
//! user = "ci-bot"                  # or users = [...], users-file, all-users
//! timeout = "60s"
//! memory = "512MiB"
//! allow-hosts = ["api.github.com"]
//! allow-dirs = ["~/.aws:/aws"]
//! inject-headers = ["api.github.com=Authorization:Bearer {env:GITHUB_TOKEN}"]
//! allow-host-cas = ["k8s.example.com:6443=cluster-ca.pem"]   # a private CA
//! older-than = "90d"                # rotate only keys at least this old
//! retire = "deactivate"             # or "delete" (the default), or "drain"
//! verify-timeout = "60s"            # verify = false to skip the check
//! journal = "iam"                   # or "file" (the default)
//!
//! [config]
//! repo = "octo/app"
//!
//! [secrets]
//! token = "env:GITHUB_TOKEN"
//!
//! [aws]
//! profile = "security"
//!
//! [[notify]]                        # a reporter, told about the run at its end
//! plugin = "slack.wasm"
//! on = ["failed", "needs-attention", "warning"]
//! allow-hosts = ["slack.com"]
//! [notify.config]
//! channel = "#ops"
//! [notify.secrets]
//! token = "env:SLACK_TOKEN"
//! ```
//!
//! ```toml
//! plugin = "github.wasm"            # the default for every target
//! concurrency = 8
//!
//! [[target]]
//! name = "prod"
//! users-file = "prod-users.txt"
//! [target.config]
//! repo = "octo/prod"
//!
//! [[target]]
//! name = "staging"
//! all-users = true
//! path-prefix = "/ci/"
//! [target.aws]
//! role-arn = "arn:aws:iam::210987654321:role/keyrot"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use keyrot::{AwsOptions, RetireMode};
use serde::Deserialize;

use super::args::{self, JournalKind};

/// A job file, as written. Unknown keys are errors, so a typo cannot
/// silently drop a grant or a setting.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Job {
    pub plugin: Option<PathBuf>,
    pub plugin_sha256: Option<String>,
    /// A label for a `[[target]]`, used in messages.
    pub name: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub users: Vec<String>,
    pub users_file: Option<PathBuf>,
    pub all_users: Option<bool>,
    pub path_prefix: Option<String>,
    /// Users rotated at a time (top level only).
    pub concurrency: Option<usize>,
    /// Where the run's metrics go (top level only).
    pub metrics_file: Option<PathBuf>,
    pub timeout: Option<String>,
    pub memory: Option<String>,
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    #[serde(default)]
    pub allow_dirs: Vec<String>,
    #[serde(default)]
    pub inject_headers: Vec<String>,
    /// Private CAs, `HOST=FILE`: the only roots trusted for that host.
    #[serde(default)]
    pub allow_host_cas: Vec<String>,
    /// Hosts whose requests the host signs, `HOST[=SERVICE/REGION]`.
    #[serde(default)]
    pub aws_sign: Vec<String>,
    pub aws_sign_role_arn: Option<String>,
    pub aws_sign_external_id: Option<String>,
    pub aws_sign_profile: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Rotate keys at least this old (`max-age` is the same key).
    #[serde(alias = "max-age")]
    pub older_than: Option<String>,
    /// Warn about keys due within this long (`warn-age` is the same key).
    #[serde(alias = "warn-age")]
    pub warn_within: Option<String>,
    pub retire: Option<RetireMode>,
    pub verify: Option<bool>,
    pub verify_timeout: Option<String>,
    pub drain_quiet: Option<String>,
    pub drain_grace: Option<String>,
    pub drain_timeout: Option<String>,
    pub journal: Option<JournalKind>,
    #[serde(default)]
    pub aws: AwsOptions,
    /// cosign public keys, one of which must have signed an oci:// plugin.
    #[serde(default)]
    pub plugin_keys: Vec<PathBuf>,
    /// Accept an oci:// plugin named by a tag alone.
    #[serde(default)]
    pub allow_unpinned: bool,
    /// The deadline of each registry operation for an oci:// plugin.
    pub registry_timeout: Option<String>,
    /// `[[target]]` blocks (top level only).
    #[serde(default)]
    pub target: Vec<Job>,
    /// `[[notify]]` blocks: reporters told about the run (top level only).
    #[serde(default)]
    pub notify: Vec<NotifyJob>,
    /// An organization run: `org = true`, or an `[org]` table (top level
    /// only).
    #[serde(default, deserialize_with = "org_key")]
    pub org: Option<OrgJob>,
    /// In an organization's `[[target]]`: accounts under these OUs.
    #[serde(default)]
    pub ous: Vec<String>,
    /// In an organization's `[[target]]`: these accounts.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// The values above written as text, parsed when the job was loaded.
    #[serde(skip)]
    pub parsed: Parsed,
}

/// A job's values that are written as text (`"60s"`, `"512MiB"`), parsed
/// when it is loaded by the parser of the flag that overrides each, so an
/// error names the job file's key at load and the plan merges each as
/// `flag.or(job).unwrap_or(default)`.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub timeout: Option<Duration>,
    pub memory: Option<usize>,
    pub older_than: Option<Duration>,
    pub warn_within: Option<Duration>,
    pub verify_timeout: Option<Duration>,
    pub drain_quiet: Option<Duration>,
    pub drain_grace: Option<Duration>,
    pub drain_timeout: Option<Duration>,
    pub registry_timeout: Option<Duration>,
    pub plugin_sha256: Option<String>,
    pub concurrency: Option<usize>,
}

impl Parsed {
    /// Parses `job`'s text values; an error is `(key, why)`.
    fn of(job: &Job) -> Result<Parsed, (&'static str, String)> {
        fn one<T>(
            key: &'static str,
            text: &Option<String>,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, (&'static str, String)> {
            text.as_deref()
                .map(|t| parse(t).map_err(|why| (key, why)))
                .transpose()
        }
        Ok(Parsed {
            timeout: one("timeout", &job.timeout, args::parse_duration)?,
            memory: one("memory", &job.memory, args::parse_size)?,
            older_than: one("older-than", &job.older_than, args::parse_age)?,
            warn_within: one("warn-within", &job.warn_within, args::parse_age)?,
            verify_timeout: one("verify-timeout", &job.verify_timeout, args::parse_duration)?,
            drain_quiet: one("drain-quiet", &job.drain_quiet, args::parse_age)?,
            drain_grace: one("drain-grace", &job.drain_grace, args::parse_age)?,
            drain_timeout: one("drain-timeout", &job.drain_timeout, args::parse_age)?,
            registry_timeout: one(
                "registry-timeout",
                &job.registry_timeout,
                args::parse_duration,
            )?,
            plugin_sha256: one("plugin-sha256", &job.plugin_sha256, |hex| {
                args::parse_sha256(hex).map(|()| hex.to_string())
            })?,
            concurrency: one(
                "concurrency",
                &job.concurrency.map(|n| n.to_string()),
                args::parse_concurrency,
            )?,
        })
    }

    /// These values over `defaults` (a target's over the job's).
    fn with_defaults(&self, defaults: &Parsed) -> Parsed {
        Parsed {
            timeout: self.timeout.or(defaults.timeout),
            memory: self.memory.or(defaults.memory),
            older_than: self.older_than.or(defaults.older_than),
            warn_within: self.warn_within.or(defaults.warn_within),
            verify_timeout: self.verify_timeout.or(defaults.verify_timeout),
            drain_quiet: self.drain_quiet.or(defaults.drain_quiet),
            drain_grace: self.drain_grace.or(defaults.drain_grace),
            drain_timeout: self.drain_timeout.or(defaults.drain_timeout),
            registry_timeout: self.registry_timeout.or(defaults.registry_timeout),
            plugin_sha256: self
                .plugin_sha256
                .clone()
                .or_else(|| defaults.plugin_sha256.clone()),
            concurrency: None,
        }
    }
}

impl Job {
    /// Reads a job file; relative paths in it are made relative to its
    /// directory, not to wherever keyrot runs.
    pub fn load(path: &Path) -> anyhow::Result<Job> {
        let text = keyrot::input::read_regular_text(path, MAX_JOB_BYTES)
            .with_context(|| format!("cannot read job file {}", path.display()))?;
        let mut job: Job = toml::from_str(&text).map_err(|err| {
            anyhow::anyhow!(
                "job file {} is not valid: {}",
                path.display(),
                describe_toml_error(&text, &err)
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        job.resolve_paths(base);
        let parse = |job: &Job, which: &str| {
            Parsed::of(job).map_err(|(key, why)| {
                anyhow::anyhow!("job file {}: {which}{key}: {why}", path.display())
            })
        };
        job.parsed = parse(&job, "")?;
        if !job.ous.is_empty() || !job.accounts.is_empty() {
            anyhow::bail!(
                "job file {}: `ous` and `accounts` choose a [[target]]'s accounts in an \
                 organization run; the run's own scope is `ous` in the [org] table",
                path.display()
            );
        }
        let mut targets = std::mem::take(&mut job.target);
        for (i, target) in targets.iter_mut().enumerate() {
            let which = target.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
            for (key, set) in [
                ("[[target]]", !target.target.is_empty()),
                ("concurrency", target.concurrency.is_some()),
                ("[[notify]]", !target.notify.is_empty()),
                ("metrics-file", target.metrics_file.is_some()),
                ("journal", target.journal.is_some()),
                ("org", target.org.is_some()),
            ] {
                if set {
                    anyhow::bail!(
                        "job file {}: target {which}: `{key}` belongs at the top level, not \
                         in a [[target]]",
                        path.display()
                    );
                }
            }
            target.resolve_paths(base);
            target.parsed = parse(target, &format!("target {which}: "))?;
        }
        job.target = targets;
        for notify in &mut job.notify {
            notify.resolve_paths(base);
        }
        Ok(job)
    }

    /// The targets this job describes, each with the top-level defaults
    /// filled in; a job without `[[target]]` blocks is its own one target.
    pub fn targets(&self) -> Vec<Job> {
        if self.target.is_empty() {
            let mut only = self.clone();
            only.target.clear();
            return vec![only];
        }
        self.target.iter().map(|t| t.with_defaults(self)).collect()
    }

    /// This target's values over `defaults`.
    fn with_defaults(&self, defaults: &Job) -> Job {
        fn list<T: Clone>(own: &[T], default: &[T]) -> Vec<T> {
            if own.is_empty() { default } else { own }.to_vec()
        }
        fn table(
            own: &BTreeMap<String, String>,
            default: &BTreeMap<String, String>,
        ) -> BTreeMap<String, String> {
            let mut merged = default.clone();
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
            merged
        }
        // A target that names its users does not inherit the defaults'.
        let selects = self.user.is_some()
            || !self.users.is_empty()
            || self.users_file.is_some()
            || self.all_users.is_some()
            || self.path_prefix.is_some();
        let d = defaults;
        Job {
            plugin: self.plugin.clone().or_else(|| d.plugin.clone()),
            plugin_sha256: self
                .plugin_sha256
                .clone()
                .or_else(|| d.plugin_sha256.clone()),
            name: self.name.clone(),
            user: if selects {
                self.user.clone()
            } else {
                d.user.clone()
            },
            users: if selects {
                self.users.clone()
            } else {
                d.users.clone()
            },
            users_file: if selects {
                self.users_file.clone()
            } else {
                d.users_file.clone()
            },
            all_users: if selects { self.all_users } else { d.all_users },
            path_prefix: if selects {
                self.path_prefix.clone()
            } else {
                d.path_prefix.clone()
            },
            concurrency: None,
            metrics_file: None,
            timeout: self.timeout.clone().or_else(|| d.timeout.clone()),
            memory: self.memory.clone().or_else(|| d.memory.clone()),
            allow_hosts: list(&self.allow_hosts, &d.allow_hosts),
            allow_dirs: list(&self.allow_dirs, &d.allow_dirs),
            inject_headers: list(&self.inject_headers, &d.inject_headers),
            allow_host_cas: list(&self.allow_host_cas, &d.allow_host_cas),
            aws_sign: list(&self.aws_sign, &d.aws_sign),
            aws_sign_role_arn: self
                .aws_sign_role_arn
                .clone()
                .or_else(|| d.aws_sign_role_arn.clone()),
            aws_sign_external_id: self
                .aws_sign_external_id
                .clone()
                .or_else(|| d.aws_sign_external_id.clone()),
            aws_sign_profile: self
                .aws_sign_profile
                .clone()
                .or_else(|| d.aws_sign_profile.clone()),
            config: table(&self.config, &d.config),
            secrets: table(&self.secrets, &d.secrets),
            older_than: self.older_than.clone().or_else(|| d.older_than.clone()),
            warn_within: self.warn_within.clone().or_else(|| d.warn_within.clone()),
            retire: self.retire.or(d.retire),
            verify: self.verify.or(d.verify),
            verify_timeout: self
                .verify_timeout
                .clone()
                .or_else(|| d.verify_timeout.clone()),
            drain_quiet: self.drain_quiet.clone().or_else(|| d.drain_quiet.clone()),
            drain_grace: self.drain_grace.clone().or_else(|| d.drain_grace.clone()),
            drain_timeout: self
                .drain_timeout
                .clone()
                .or_else(|| d.drain_timeout.clone()),
            journal: d.journal,
            aws: self.aws.clone().or(d.aws.clone()),
            plugin_keys: list(&self.plugin_keys, &d.plugin_keys),
            allow_unpinned: self.allow_unpinned || d.allow_unpinned,
            registry_timeout: self
                .registry_timeout
                .clone()
                .or_else(|| d.registry_timeout.clone()),
            target: Vec::new(),
            notify: Vec::new(),
            org: None,
            ous: self.ous.clone(),
            accounts: self.accounts.clone(),
            parsed: self.parsed.with_defaults(&defaults.parsed),
        }
    }

    /// Makes relative paths relative to `base`, the job file's directory.
    fn resolve_paths(&mut self, base: &Path) {
        let job = self;
        if let Some(plugin) = &job.plugin
            && !plugin.to_str().is_some_and(keyrot::oci::OciRef::is_oci)
        {
            job.plugin = Some(base.join(plugin));
        }
        for key in &mut job.plugin_keys {
            *key = base.join(&*key);
        }
        if let Some(file) = &job.users_file {
            job.users_file = Some(base.join(file));
        }
        if let Some(file) = &job.metrics_file {
            job.metrics_file = Some(base.join(file));
        }
        let relative = |p: &str| !p.starts_with('/') && !p.starts_with('~');
        for dir in &mut job.allow_dirs {
            if relative(dir) {
                *dir = base.join(&*dir).display().to_string();
            }
        }
        for spec in &mut job.allow_host_cas {
            if let Some((host, file)) = spec.split_once('=')
                && relative(file.trim())
                && !file.trim().is_empty()
            {
                *spec = format!("{host}={}", base.join(file.trim()).display());
            }
        }
        resolve_secret_paths(&mut job.secrets, &mut job.inject_headers, base);
    }
}

/// Makes the `file:` paths of secrets and injected headers relative to
/// `base`, the job file's directory.
fn resolve_secret_paths(
    secrets: &mut BTreeMap<String, String>,
    inject_headers: &mut [String],
    base: &Path,
) {
    let relative = |p: &str| !p.starts_with('/') && !p.starts_with('~');
    for source in secrets.values_mut() {
        if let Some(path) = source.strip_prefix("file:")
            && relative(path)
        {
            *source = format!("file:{}", base.join(path).display());
        }
    }
    for spec in inject_headers {
        if let Some(start) = spec.find("{file:")
            && let Some(len) = spec[start..].find('}')
        {
            let path = &spec[start + 6..start + len];
            if relative(path) {
                let absolute = base.join(path).display().to_string();
                spec.replace_range(start + 6..start + len, &absolute);
            }
        }
    }
}

/// One `[[notify]]` block: a reporter, its sandbox and the events it is
/// told about. Its grants and settings are its own: nothing is inherited
/// from the handler's.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NotifyJob {
    /// The reporter component (relative to the job file).
    pub plugin: PathBuf,
    /// How reports and `--notify-*` flags name it (default: the file's
    /// name without `.wasm`).
    pub name: Option<String>,
    /// The sha256 the component must have.
    pub plugin_sha256: Option<String>,
    /// The events it is told about (default: failed, needs-attention,
    /// warning, rotated).
    pub on: Option<Vec<String>>,
    /// Its time limit per call.
    pub timeout: Option<String>,
    /// Its memory limit.
    pub memory: Option<String>,
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    #[serde(default)]
    pub inject_headers: Vec<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl NotifyJob {
    fn resolve_paths(&mut self, base: &Path) {
        if !self.plugin.is_absolute() {
            self.plugin = base.join(&self.plugin);
        }
        resolve_secret_paths(&mut self.secrets, &mut self.inject_headers, base);
    }
}

/// A job's `[org]` table: the organization run's scope, role and
/// exemptions. `org = true` is the table with every default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OrgJob {
    /// Only the accounts under these OUs (default: the organization).
    #[serde(default)]
    pub ous: Vec<String>,
    /// The role entered in each member account.
    pub role_name: Option<String>,
    /// The external id the member roles require.
    pub external_id: Option<String>,
    /// The session name of the member roles.
    pub role_session_name: Option<String>,
    /// Members of these IAM groups are exempt.
    #[serde(default)]
    pub exempt_groups: Vec<String>,
    /// The user tag that names the owner.
    pub owner_tag: Option<String>,
    /// Accounts and OUs left alone, each with its reason.
    #[serde(default)]
    pub exempt: Vec<ExemptEntry>,
}

/// One `[[org.exempt]]` entry: an account or an OU, and why.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExemptEntry {
    pub account: Option<String>,
    pub ou: Option<String>,
    pub reason: String,
}

/// `org = true` (every default), `org = false` (none), or an `[org]` table.
fn org_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<OrgJob>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<OrgJob>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("true, or an [org] table")
        }
        fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
            Ok(on.then(OrgJob::default))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            OrgJob::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(Visitor)
}

/// Largest job file read: a job is a page of settings, not data.
const MAX_JOB_BYTES: u64 = 1024 * 1024;

/// A TOML error as position and message, never the source snippet toml
/// would quote: the offending line may be a secret written in by mistake
/// (`token = ghp_...`) or 200 KB long. In the `[secrets]` table and the
/// `inject-headers` list, quoted values are dropped from the message too.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let mut message = keyrot::text::escape_control(err.message().trim()).into_owned();
    let Some(span) = err.span() else {
        return keyrot::text::truncate(&message, 300).to_string();
    };
    let offset = span.start.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    if in_secret_entry(text, offset) {
        message = without_quoted(&message);
        message.push_str(
            " (the value is not shown: it may be a secret; write secrets as env:VAR or \
             file:PATH)",
        );
    }
    format!(
        "line {line}, column {column}: {}",
        keyrot::text::truncate(&message, 300)
    )
}

/// Whether byte `offset` of a job file falls in a `[secrets]` entry or the
/// `inject-headers` list (as far as a line-by-line reading can tell).
fn in_secret_entry(text: &str, offset: usize) -> bool {
    let mut table = String::new();
    let mut in_headers = false;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && !in_headers {
            table = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
        }
        let key = trimmed.split(['=', '.', ' ']).next().unwrap_or("").trim();
        let key = key.trim_matches('"');
        if (table.is_empty() || table == "target" || table == "notify") && key == "inject-headers" {
            in_headers = true;
        }
        let sensitive = in_headers
            || table == "secrets"
            || table.starts_with("secrets.")
            || table == "target.secrets"
            || table == "notify.secrets"
            || ((table.is_empty() || table == "target" || table == "notify") && key == "secrets");
        if offset < start + line.len() || start + line.len() == text.len() {
            return sensitive;
        }
        if in_headers && line.contains(']') {
            in_headers = false;
        }
        start += line.len();
    }
    false
}

/// `message` with `backticked` and "quoted" parts replaced by `…`.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut closing = None;
    for c in message.chars() {
        match closing {
            Some(end) if c == end => {
                closing = None;
                out.push('…');
            }
            Some(_) => {}
            None if matches!(c, '`' | '"' | '\'') => closing = Some(c),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_job_and_resolves_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        std::fs::write(
            &path,
            r#"
            plugin = "github.wasm"
            user = "ci-bot"
            allow-hosts = ["api.github.com"]
            allow-dirs = ["creds:/aws", "/abs:/x"]
            inject-headers = ["api.github.com=Authorization:Bearer {file:gh-token}"]
            allow-host-cas = ["k8s.example.com:6443=certs/ca.pem", "h=/etc/ca.pem"]
            [config]
            repo = "o/r"
            [secrets]
            token = "env:GITHUB_TOKEN"
            key = "file:keys/key.txt"
            abs = "file:/run/secret"
            [aws]
            endpoint-url = "http://127.0.0.1:5000"
            "#,
        )
        .unwrap();
        let job = Job::load(&path).unwrap();
        assert_eq!(job.plugin.unwrap(), dir.path().join("github.wasm"));
        assert_eq!(job.user.as_deref(), Some("ci-bot"));
        assert_eq!(
            job.allow_dirs,
            [
                format!("{}:/aws", dir.path().join("creds").display()),
                "/abs:/x".into()
            ]
        );
        assert_eq!(job.config["repo"], "o/r");
        assert_eq!(job.secrets["token"], "env:GITHUB_TOKEN");
        let base = dir.path().display();
        assert_eq!(job.secrets["key"], format!("file:{base}/keys/key.txt"));
        assert_eq!(job.secrets["abs"], "file:/run/secret");
        assert_eq!(
            job.inject_headers,
            [format!(
                "api.github.com=Authorization:Bearer {{file:{base}/gh-token}}"
            )]
        );
        assert_eq!(
            job.allow_host_cas,
            [
                format!("k8s.example.com:6443={base}/certs/ca.pem"),
                "h=/etc/ca.pem".into()
            ]
        );
        assert_eq!(
            job.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
    }

    #[test]
    fn errors_never_quote_secret_values_or_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            format!("{:#}", Job::load(&path).unwrap_err())
        };
        let err = load("user = \"ci\"\n[secrets]\ntoken = ghp_SECRETSECRET\n");
        assert!(!err.contains("ghp_"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = load("[secrets]\ntoken = 123456789\n");
        assert!(!err.contains("123456789"), "{err}");
        assert!(err.contains("not shown"), "{err}");
        let err = load("inject-headers = [\n  \"a\",\n  12345678,\n]\n");
        assert!(!err.contains("12345678"), "{err}");
        let err = load(&format!("user = {}\n", "[".repeat(200_000)));
        assert!(err.len() < 1000, "{} bytes", err.len());
        // Elsewhere the message stays as toml says it.
        let err = load("timeout = 30\n");
        assert!(err.contains("line 1") && err.contains("30"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.toml");
        std::fs::write(&path, "allow-host = [\"api.github.com\"]\n").unwrap();
        let err = format!("{:#}", Job::load(&path).unwrap_err());
        assert!(err.contains("unknown field `allow-host`"), "{err}");
    }
}

//! Job files: one reviewed TOML definition of a rotation (plugin, user,
//! settings, grants, limits) that a team can share; flags override it.
//! Relative paths in it (plugin, directories, `file:` secrets) are relative
//! to the file.
//!
//! ```toml
//! plugin = "github.wasm"            # relative to this file, or oci://…@sha256:…
//! plugin-sha256 = "4f0c…"
//! plugin-keys = ["team.pub"]        # an oci:// plugin must be signed by one
//! allow-unpinned = false            # refuse an oci:// tag without a digest
//! user = "ci-bot"
//! timeout = "60s"
//! memory = "512MiB"
//! allow-hosts = ["api.github.com"]
//! allow-dirs = ["~/.aws:/aws"]
//! inject-headers = ["api.github.com=Authorization:Bearer {env:GITHUB_TOKEN}"]
//! older-than = "90d"                # rotate only keys at least this old
//! retire = "deactivate"             # or "delete" (the default)
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
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use keyrot::{AwsOptions, RetireMode};
use serde::Deserialize;

use super::args::JournalKind;

/// A job file, as written. Unknown keys are errors, so a typo cannot
/// silently drop a grant or a setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Job {
    pub plugin: Option<PathBuf>,
    pub plugin_sha256: Option<String>,
    pub user: Option<String>,
    pub timeout: Option<String>,
    pub memory: Option<String>,
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    #[serde(default)]
    pub allow_dirs: Vec<String>,
    #[serde(default)]
    pub inject_headers: Vec<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    pub older_than: Option<String>,
    pub retire: Option<RetireMode>,
    pub verify: Option<bool>,
    pub verify_timeout: Option<String>,
    pub journal: Option<JournalKind>,
    #[serde(default)]
    pub aws: AwsOptions,
    /// cosign public keys, one of which must have signed an oci:// plugin.
    #[serde(default)]
    pub plugin_keys: Vec<PathBuf>,
    /// Accept an oci:// plugin named by a tag alone.
    #[serde(default)]
    pub allow_unpinned: bool,
}

impl Job {
    /// Reads a job file; relative paths in it are made relative to its
    /// directory, not to wherever keyrot runs.
    pub fn load(path: &Path) -> anyhow::Result<Job> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read job file {}", path.display()))?;
        let mut job: Job = toml::from_str(&text)
            .with_context(|| format!("job file {} is not valid", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(plugin) = &job.plugin
            && !plugin.to_str().is_some_and(keyrot::oci::OciRef::is_oci)
        {
            job.plugin = Some(base.join(plugin));
        }
        for key in &mut job.plugin_keys {
            *key = base.join(&*key);
        }
        let relative = |p: &str| !p.starts_with('/') && !p.starts_with('~');
        for dir in &mut job.allow_dirs {
            if relative(dir) {
                *dir = base.join(&*dir).display().to_string();
            }
        }
        for source in job.secrets.values_mut() {
            if let Some(path) = source.strip_prefix("file:")
                && relative(path)
            {
                *source = format!("file:{}", base.join(path).display());
            }
        }
        for spec in &mut job.inject_headers {
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
        Ok(job)
    }
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
            job.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:5000")
        );
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

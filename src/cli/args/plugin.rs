//! `keyrot plugin ...`: inspect (with the grants a run would give, to
//! check against a plugin's declared needs), push, sign, verify, and the
//! handler kit's `new` and `test`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use keyrot::grants::{DirGrant, HostRule};

use super::values::{parse_duration, parse_key_value, parse_size};

/// `keyrot plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Start a handler: write a small, buildable project in NAME/ (a file handler to adapt)
    New {
        /// The handler's name, also its directory: lower-case letters, digits and hyphens, e.g. vault-kv
        name: String,
        /// The language to write it in
        #[arg(long, value_enum, value_name = "LANG", help_heading = "Plugin")]
        lang: LangArg,
    },
    /// Check a handler against the contract: rotations against IAM in memory, no AWS, no network
    Test(PluginTestArgs),
    /// Show a plugin's name, version, settings, needs, imports and sha256
    ///
    /// Give the grants a run would give (--allow-host, --allow-dir,
    /// --config, --memory, --timeout) to see whether they fit what the
    /// plugin declares it needs, before anything runs.
    Inspect {
        /// The plugin component (.wasm), or oci://REGISTRY/REPO:TAG[@sha256:DIGEST]
        path: PathBuf,
        /// For oci:// plugins: say whether this cosign public key signed it (repeatable)
        #[arg(long, value_name = "FILE", help_heading = "Plugin")]
        key: Vec<PathBuf>,
        #[command(flatten)]
        grants: InspectGrants,
    },
    /// Publish a plugin to an OCI registry; prints the digest of the manifest it uploaded (sign that)
    Push {
        /// The plugin component (.wasm)
        file: PathBuf,
        /// Where to: REGISTRY/REPO:TAG (oci:// optional)
        reference: String,
    },
    /// Sign a published plugin with a cosign key (password in COSIGN_PASSWORD)
    Sign {
        /// oci://REGISTRY/REPO[:TAG]@sha256:DIGEST: a digest, never a tag alone (the registry chooses what a tag names)
        reference: String,
        /// The cosign private key (cosign.key)
        #[arg(long, value_name = "FILE", help_heading = "Plugin")]
        key: PathBuf,
    },
    /// Check that a published plugin is signed by one of these cosign keys
    Verify {
        /// oci://REGISTRY/REPO:TAG[@sha256:DIGEST]
        reference: String,
        /// A cosign public key (cosign.pub); repeatable, one must match
        #[arg(long, value_name = "FILE", required = true, help_heading = "Plugin")]
        key: Vec<PathBuf>,
    },
}

/// `keyrot plugin new --lang`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// Rust, with wit-bindgen (cargo, the wasm32-wasip2 target).
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with ComponentizeJS (Node.js, npm).
    Javascript,
    /// C, with wit-bindgen, clang for WASI and wasm-tools (make).
    C,
}

impl From<LangArg> for keyrot::kit::template::Lang {
    fn from(arg: LangArg) -> Self {
        use keyrot::kit::template::Lang;
        match arg {
            LangArg::Rust => Lang::Rust,
            LangArg::Python => Lang::Python,
            LangArg::Javascript => Lang::Javascript,
            LangArg::C => Lang::C,
        }
    }
}

/// `keyrot plugin test`: the plugin, and what a real run would give it.
#[derive(Debug, Args)]
pub struct PluginTestArgs {
    /// The handler component (.wasm)
    pub plugin: PathBuf,

    /// A setting for the plugin, read through wasi:config (repeatable)
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, help_heading = "Plugin")]
    pub config: Vec<(String, String)>,

    /// A secret setting, checked never to show: NAME=env:VAR or NAME=file:PATH
    #[arg(
        long,
        value_name = "NAME=env:VAR|NAME=file:PATH",
        help_heading = "Plugin"
    )]
    pub secret: Vec<String>,

    /// Let the plugin make HTTP requests to this host: your fake of its destination (repeatable)
    #[arg(
        long,
        value_name = "HOST[:PORT]|http://HOST:PORT",
        help_heading = "Grants"
    )]
    pub allow_host: Vec<HostRule>,

    /// Let the plugin see a directory, read-write unless :ro (repeatable)
    ///
    /// Without it, a directory the plugin's needs name (through a setting
    /// you do not give) is a fresh temporary one, seen as /keyrot-test.
    #[arg(
        long,
        value_name = "HOST_PATH[:GUEST_PATH][:ro]",
        help_heading = "Grants"
    )]
    pub allow_dir: Vec<DirGrant>,

    /// Add a header to requests to one host, from a secret the plugin never sees
    ///
    /// As for a run: HOST=HEADER:VALUE, one {env:VAR} or {file:PATH} in
    /// VALUE (repeatable).
    #[arg(
        long,
        value_name = "HOST=HEADER:VALUE",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub inject_header: Vec<String>,

    /// Trust only the PEM CA certificates in FILE for HTTPS to HOST (your fake's own CA)
    #[arg(
        long,
        value_name = "HOST=FILE",
        hide_short_help = true,
        help_heading = "Grants"
    )]
    pub allow_host_ca: Vec<String>,

    /// Time limit for each plugin call, e.g. 30s, 2m, 500ms [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Limits")]
    pub timeout: Option<Duration>,

    /// Memory limit for the plugin, e.g. 256MiB, 1GiB [default: 512MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Limits")]
    pub memory: Option<usize>,
}

/// The grants `plugin inspect` checks against a plugin's declared needs:
/// the run's flags of the same names.
#[derive(Debug, Default, Args)]
pub struct InspectGrants {
    /// A setting, for needs that name one (a server's URL, a file's path)
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, help_heading = "Grants to check")]
    pub config: Vec<(String, String)>,

    /// A host the run would allow (repeatable)
    #[arg(
        long,
        value_name = "HOST[:PORT]|http://HOST:PORT",
        help_heading = "Grants to check"
    )]
    pub allow_host: Vec<HostRule>,

    /// A directory the run would grant (repeatable)
    #[arg(
        long,
        value_name = "HOST_PATH[:GUEST_PATH][:ro]",
        help_heading = "Grants to check"
    )]
    pub allow_dir: Vec<DirGrant>,

    /// The run's memory limit [default: 512MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Grants to check")]
    pub memory: Option<usize>,

    /// The run's time limit per call [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Grants to check")]
    pub timeout: Option<Duration>,
}

impl InspectGrants {
    /// Whether any grant was given: only then is the fit shown.
    pub fn given(&self) -> bool {
        !self.config.is_empty()
            || !self.allow_host.is_empty()
            || !self.allow_dir.is_empty()
            || self.memory.is_some()
            || self.timeout.is_some()
    }
}

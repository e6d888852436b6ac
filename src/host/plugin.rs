//! Loading a plugin: read and verify the file, compile it (or map its
//! compiled form from the [`cache`](super::cache)), and link it against the
//! contract version it speaks. Nothing here runs the plugin.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::cache::{Cache, CacheMode, CacheOutcome, FileStamp};
use super::contract::{self, Handler, REPORTER_VERSIONS, Reporter, VERSIONS};
use super::{Capabilities, engine};
use crate::text::escape_control;

/// Why a plugin could not be loaded or set up. Nothing has touched IAM yet.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file is missing or unreadable.
    #[error("cannot read plugin '{}': {cause}", path.display())]
    Read {
        /// The plugin path.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file is not the one the operator pinned.
    #[error(
        "plugin '{}' has sha256 {actual}, not the pinned {expected}: refusing to run it",
        path.display()
    )]
    Digest {
        /// The plugin path.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The file is not a WebAssembly component.
    #[error("plugin '{}' {what}", path.display())]
    NotAComponent {
        /// The plugin path.
        path: PathBuf,
        /// What it is instead, and how to fix it.
        what: &'static str,
    },
    /// The component is malformed or does not fit the keyrot world.
    #[error("plugin '{}' {reason}", path.display())]
    Invalid {
        /// The plugin path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The plugin needs a capability the operator did not grant.
    #[error("{0}")]
    Grants(String),
    /// `describe` failed, or the settings do not match it.
    #[error("{0}")]
    Settings(String),
}

/// How to load a plugin.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Where compiled plugins are cached.
    pub cache: CacheMode,
    /// Refuse any file whose sha256 (hex) is not this.
    pub expected_sha256: Option<String>,
}

impl LoadOptions {
    /// The user's cache unless `no_cache` (`--no-cache`), and the pin, if
    /// any: what the binary's flags say.
    pub fn new(no_cache: bool, expected_sha256: Option<String>) -> Self {
        Self {
            cache: if no_cache {
                CacheMode::Disabled
            } else {
                CacheMode::user_default()
            },
            expected_sha256,
        }
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            cache: CacheMode::user_default(),
            expected_sha256: None,
        }
    }
}

/// A compiled, linked component, not yet configured or called. Clones are
/// cheap and share the compiled code and the linked component.
#[derive(Clone)]
pub struct Plugin {
    path: PathBuf,
    sha256: String,
    pub(super) engine: Engine,
    /// The component, linked against the contract version it speaks.
    pub(super) linked: Linked,
    contract: &'static str,
    imports: Vec<String>,
    exports: Vec<String>,
    cache: CacheOutcome,
}

impl Plugin {
    /// Reads, verifies, compiles (or loads from the cache) and links the
    /// component at `path`. While the file's stamp is the one the cache
    /// recorded when it last hashed the file, the file is not read again
    /// (see [`cache`](super::cache)): unpinned, the record's sha256 is the
    /// file's; pinned (`expected_sha256`), the record counts only if it
    /// names the pinned sha256, else the file is hashed and the pin checked
    /// against the bytes read now. Bytes that are compiled are always
    /// hashed and checked against the pin.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self, PluginError> {
        let mut source = Source::open(path, options)?;
        let engine = engine::engine()
            .map_err(|e| invalid(path, format!("cannot start the engine: {e}")))?
            .clone();
        let (component, outcome) = source.compile(&engine, options)?;
        source.remember();
        tracing::debug!(cache = ?outcome, plugin = %path.display(), "plugin compiled");
        let imports = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = component
            .component_type()
            .exports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let (contract, linked) = link(path, &component, &exports)?;
        Ok(Self {
            path: path.to_path_buf(),
            sha256: source.sha256,
            engine,
            linked,
            contract,
            imports,
            exports,
            cache: outcome,
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's sha256, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Every interface the component exports, e.g. `keyrot:handler/handler@0.3.0`.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// The contract version the plugin speaks, e.g. `keyrot:handler@0.3.0`
    /// or `keyrot:reporter@0.1.0`.
    pub fn contract(&self) -> &'static str {
        self.contract
    }

    /// Which kind of plugin it is: a handler or a reporter.
    pub fn kind(&self) -> PluginKind {
        match self.linked {
            Linked::Handler(_) => PluginKind::Handler,
            Linked::Reporter(_) => PluginKind::Reporter,
        }
    }

    /// Every interface the component imports, e.g. `wasi:http/types@0.2.4`.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Whether the compiled code came from the cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// Whether the component can make outbound HTTP requests.
    pub fn wants_http(&self) -> bool {
        super::http::wants_http(&self.imports)
    }

    /// The capabilities the imports ask for, in words, for `inspect`.
    pub fn capabilities(&self) -> Vec<&'static str> {
        Capabilities::inspect(&self.imports)
    }
}

/// The two kinds of plugin keyrot runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// A new-key handler (`keyrot:handler`, `--plugin`).
    Handler,
    /// A reporter (`keyrot:reporter`, `--notify`).
    Reporter,
}

impl PluginKind {
    /// The word for it in messages.
    pub fn word(self) -> &'static str {
        match self {
            PluginKind::Handler => "handler",
            PluginKind::Reporter => "reporter",
        }
    }
}

/// A component linked against the world it exports.
#[derive(Clone)]
pub(super) enum Linked {
    /// A `keyrot:handler` plugin.
    Handler(Arc<dyn Handler>),
    /// A `keyrot:reporter` plugin.
    Reporter(Arc<dyn Reporter>),
}

/// The plugin file being loaded, and what is known of its sha256.
struct Source<'a> {
    path: &'a Path,
    file: std::fs::File,
    stamp: FileStamp,
    cache: Cache,
    /// The sha256 the cache recorded for this stamp, if any.
    known: Option<String>,
    /// The sha256 the plugin is loaded as.
    sha256: String,
    /// Whether `sha256` was computed from the file at this load.
    hashed: bool,
    /// When this load began reading the file, for [`Cache::remember_sha256`].
    began: SystemTime,
}

impl<'a> Source<'a> {
    /// Opens the file and learns its sha256 (from the cache's record or by
    /// hashing it), checks the pin and the component header.
    fn open(path: &'a Path, options: &LoadOptions) -> Result<Self, PluginError> {
        let began = SystemTime::now();
        let mut file = crate::input::open_regular(path).map_err(|e| read_error(path, e))?;
        let stamp = FileStamp::of(&file.metadata().map_err(|e| read_error(path, e))?);
        let cache = Cache::open(&options.cache);
        let known = cache.known_sha256(&stamp);
        // Pinned, a record counts only if it names the pin; one that does
        // not is not believed, and the bytes read now decide.
        let trusted = known.as_ref().filter(|sha256| {
            options
                .expected_sha256
                .as_ref()
                .is_none_or(|pin| pin.eq_ignore_ascii_case(sha256))
        });
        let (sha256, head, hashed) = match trusted {
            Some(sha256) => {
                let head = read_head(&file).map_err(|e| read_error(path, e))?;
                (sha256.clone(), head, false)
            }
            // Hashed as it streams by: a cached plugin's bytes are needed
            // for nothing else.
            None => {
                let (sha256, head) = hash_file(&mut file).map_err(|e| read_error(path, e))?;
                (sha256, head, true)
            }
        };
        check_pin(path, options, &sha256)?;
        check_header(path, &head)?;
        Ok(Self {
            path,
            file,
            stamp,
            cache,
            known,
            sha256,
            hashed,
            began,
        })
    }

    /// The compiled component: mapped from the cache, or compiled from
    /// exactly the bytes whose sha256 is checked (and then cached).
    fn compile(
        &mut self,
        engine: &Engine,
        options: &LoadOptions,
    ) -> Result<(Component, CacheOutcome), PluginError> {
        if let Some(component) = self.cache.lookup(engine, &self.sha256) {
            return Ok((component, CacheOutcome::Hit));
        }
        // Read the bytes again and hash them again: these are the ones
        // compiled.
        let path = self.path;
        let bytes = read_all(&mut self.file).map_err(|e| read_error(path, e))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != self.sha256 {
            if self.hashed {
                return Err(read_error(
                    path,
                    std::io::Error::other("the file changed while keyrot was reading it"),
                ));
            }
            // The record was stale: these bytes are the ones checked and
            // compiled.
            check_pin(path, options, &actual)?;
            check_header(path, &bytes)?;
            self.sha256 = actual;
        }
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.cache
            .compile(engine, &bytes, &self.sha256, &label)
            .map_err(|e| invalid(path, format!("is not a valid WebAssembly component: {e:#}")))
    }

    /// Records the file's sha256 for its stamp, if that is news and the
    /// file did not change while it was read.
    fn remember(&self) {
        if self.known.as_deref() != Some(self.sha256.as_str())
            && self
                .file
                .metadata()
                .is_ok_and(|m| FileStamp::of(&m) == self.stamp)
        {
            self.cache
                .remember_sha256(&self.stamp, &self.sha256, self.began);
        }
    }
}

/// Links the component against the contract version it speaks, found by
/// the `handler` (or `reporter`) interface it exports (the newest when it
/// exports several).
fn link(
    path: &Path,
    component: &Component,
    exports: &[String],
) -> Result<(&'static str, Linked), PluginError> {
    let handler = VERSIONS
        .iter()
        .find(|v| exports.iter().any(|e| e == v.export));
    let reporter = REPORTER_VERSIONS
        .iter()
        .find(|v| exports.iter().any(|e| e == v.export));
    let (package, export, world) = match (handler, reporter) {
        (Some(v), _) => (v.package, v.export, contract::world_names()),
        (None, Some(v)) => (v.package, v.export, contract::reporter_world_names()),
        (None, None) => return Err(unknown_world(path, exports)),
    };
    let linker = engine::linker().map_err(|e| invalid(path, format!("cannot link WASI: {e}")))?;
    let instance_pre = linker.instantiate_pre(component).map_err(|e| {
        invalid(
            path,
            format!("needs an import keyrot does not provide (is it built for {world}?): {e:#}"),
        )
    })?;
    let mismatch = |e: wasmtime::Error, kind: &str| {
        invalid(
            path,
            format!(
                "is not a keyrot {kind}: its {export} interface does not match the contract \
                 ({e:#})"
            ),
        )
    };
    let linked = match handler {
        Some(v) => Linked::Handler((v.link)(instance_pre).map_err(|e| mismatch(e, "handler"))?),
        None => {
            let v = reporter.expect("one of the two matched");
            Linked::Reporter((v.link)(instance_pre).map_err(|e| mismatch(e, "reporter"))?)
        }
    };
    Ok((package, linked))
}

/// A component that exports neither world: built for a newer keyrot, or
/// not for keyrot at all.
fn unknown_world(path: &Path, exports: &[String]) -> PluginError {
    let speaks = exports.iter().find(|e| {
        e.starts_with("keyrot:handler/handler@") || e.starts_with("keyrot:reporter/reporter@")
    });
    let worlds = format!(
        "{}, or a reporter of {}",
        contract::world_names(),
        contract::reporter_world_names()
    );
    // Export names are the plugin's choice: printed inert.
    invalid(
        path,
        match speaks {
            // A plugin built for a newer keyrot.
            Some(export) => format!(
                "exports {}, a contract version this keyrot does not know: it loads handlers \
                 of {worlds}; upgrade keyrot, or build the plugin against one of those",
                escape_control(export)
            ),
            None => format!(
                "is not a keyrot handler nor reporter: a handler must export the `handler` interface of the \
                 world {worlds} (the `reporter` interface), and it exports {}",
                if exports.is_empty() {
                    "nothing".to_string()
                } else {
                    escape_control(&exports.join(", ")).into_owned()
                }
            ),
        },
    )
}

fn read_error(path: &Path, cause: std::io::Error) -> PluginError {
    PluginError::Read {
        path: path.to_path_buf(),
        cause,
    }
}

fn invalid(path: &Path, reason: String) -> PluginError {
    PluginError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

/// Refuses a file whose sha256 is not the pinned one.
fn check_pin(path: &Path, options: &LoadOptions, sha256: &str) -> Result<(), PluginError> {
    match &options.expected_sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(sha256) => Err(PluginError::Digest {
            path: path.to_path_buf(),
            expected: expected.to_ascii_lowercase(),
            actual: sha256.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The file's sha256 (hex) and its first bytes, read in small chunks.
fn hash_file(file: &mut std::fs::File) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::Read;
    // Small enough to stay in the CPU cache while it is hashed.
    let mut buf = vec![0; 256 * 1024];
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if head.len() < 8 {
            let take = (8 - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), head))
}

/// The file's first bytes, enough for [`check_header`].
fn read_head(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut head = [0; 8];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(head[..filled].to_vec())
}

/// The whole file, from its start.
fn read_all(file: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Tells a component from a core module or a file that is not WebAssembly,
/// so the error says how to fix it.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let what = match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => return Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            "is a core WebAssembly module, not a component: build it for the wasm32-wasip2 \
             target, or wrap it with `wasm-tools component new`"
        }
        _ => "is not a WebAssembly component (it does not start with the \\0asm header)",
    };
    Err(PluginError::NotAComponent {
        path: path.to_path_buf(),
        what,
    })
}

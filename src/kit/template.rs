//! `keyrot plugin new`: the starter projects, one per language, built into
//! the binary from `plugins/templates/` and the current contract, `wit/`.
//!
//! Each template is a small, honest file handler (it writes the key to the
//! file its `path` setting names, atomically, and refuses a file holding a
//! key it was not told about) with one build command in its README. A
//! project is the template's files with its name put in, plus keyrot's
//! `wit/` (`handler.wit` and `deps/`), word for word: the tests fail if
//! what is built in here ever differs from `wit/` or from
//! `plugins/templates/`.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The name a template's files use for the project, replaced by the new
/// project's (`keyrot_template` where an identifier needs underscores).
const PLACEHOLDER: &str = "keyrot-template";

/// The languages `keyrot plugin new` writes a handler in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lang {
    /// Rust, with wit-bindgen, for `wasm32-wasip2`.
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with ComponentizeJS.
    Javascript,
    /// C, with wit-bindgen, wasi-libc's clang and wasm-tools.
    C,
}

impl Lang {
    /// Every language, in the order help lists them.
    pub const ALL: [Lang; 4] = [Lang::Rust, Lang::Python, Lang::Javascript, Lang::C];

    /// The language's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Javascript => "javascript",
            Lang::C => "c",
        }
    }

    /// The one command that builds a project (run in its directory).
    pub fn build_command(self) -> &'static str {
        match self {
            Lang::Rust => "cargo build --release --target wasm32-wasip2",
            Lang::Python => {
                "componentize-py -d wit -w keyrot:handler/new-key-handler componentize app -o \
                 keyrot-template.wasm"
            }
            Lang::Javascript => "npm install && npm run build",
            Lang::C => "make",
        }
    }

    /// Where the build puts the component, relative to the project.
    fn component(self) -> &'static str {
        match self {
            Lang::Rust => "target/wasm32-wasip2/release/keyrot_template.wasm",
            _ => "keyrot-template.wasm",
        }
    }

    /// The template's own files: (path in the project, text).
    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Rust => RUST,
            Lang::Python => PYTHON,
            Lang::Javascript => JAVASCRIPT,
            Lang::C => C,
        }
    }

    /// Where keyrot's contract goes in the project: `wit/` itself, or, for
    /// JavaScript, whose world adds `wasi:filesystem`, `wit/deps/`.
    fn contract_dir(self) -> Option<&'static str> {
        match self {
            Lang::Javascript => None,
            _ => Some("wit"),
        }
    }
}

/// Reads the template's file at `plugins/templates/$path`.
macro_rules! template {
    ($path:literal) => {
        include_str!(concat!("../../plugins/templates/", $path))
    };
}

/// Reads keyrot's `wit/$path`.
macro_rules! wit {
    ($path:literal) => {
        ($path, include_str!(concat!("../../wit/", $path)))
    };
}

/// The current contract, `wit/` without the older versions or the
/// reporter's world: (path under `wit/`, text).
pub const CONTRACT: &[(&str, &str)] = &[
    wit!("handler.wit"),
    wit!("deps/config/store.wit"),
    wit!("deps/config/world.wit"),
    wit!("deps/logging/logging.wit"),
];

const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", template!("rust/Cargo.toml")),
    ("src/lib.rs", template!("rust/src/lib.rs")),
    ("README.md", template!("rust/README.md")),
];

const PYTHON: &[(&str, &str)] = &[
    ("app.py", template!("python/app.py")),
    ("README.md", template!("python/README.md")),
];

const JAVASCRIPT: &[(&str, &str)] = &[
    ("package.json", template!("javascript/package.json")),
    ("handler.js", template!("javascript/handler.js")),
    ("README.md", template!("javascript/README.md")),
    ("wit/world.wit", template!("javascript/wit/world.wit")),
    ("wit/deps/io.wit", template!("javascript/wit/deps/io.wit")),
    (
        "wit/deps/clocks.wit",
        template!("javascript/wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        template!("javascript/wit/deps/filesystem.wit"),
    ),
];

const C: &[(&str, &str)] = &[
    ("Makefile", template!("c/Makefile")),
    ("handler.c", template!("c/handler.c")),
    ("README.md", template!("c/README.md")),
];

/// A project `keyrot plugin new` writes, not yet on disk.
#[derive(Clone, Debug, Serialize)]
pub struct Project {
    /// The handler's name.
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// The contract it is built against, e.g. `keyrot:handler@0.4.0`.
    pub contract: String,
    /// The command that builds it, run in its directory.
    pub build: String,
    /// The component the build makes, relative to the project.
    pub component: String,
    /// Its files: (path relative to the project, text).
    #[serde(skip)]
    pub files: Vec<(String, String)>,
}

impl Project {
    /// The project for handler `name` in `lang`, or why the name will not do.
    pub fn new(name: &str, lang: Lang) -> Result<Self, String> {
        check_name(name)?;
        let put = |text: &str| {
            text.replace(PLACEHOLDER, name)
                .replace(&PLACEHOLDER.replace('-', "_"), &name.replace('-', "_"))
        };
        let mut files: Vec<(String, String)> = lang
            .files()
            .iter()
            .map(|(path, text)| (path.to_string(), put(text)))
            .collect();
        for (path, text) in CONTRACT {
            let path = match lang.contract_dir() {
                Some(dir) => format!("{dir}/{path}"),
                // The contract as a dependency of the project's own world.
                None => match path.strip_prefix("deps/") {
                    Some(dep) => format!("wit/deps/{dep}"),
                    None => format!("wit/deps/keyrot-handler/{path}"),
                },
            };
            files.push((path, text.to_string()));
        }
        Ok(Self {
            name: name.to_string(),
            lang,
            contract: contract_version(),
            build: put(lang.build_command()),
            component: put(lang.component()),
            files,
        })
    }

    /// Writes the project into `dir`, which must not exist yet (its parent
    /// must); returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        std::fs::create_dir(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{} already exists: choose another name, or move it away",
                dir.display()
            ),
            _ => format!("cannot create {}: {e}", dir.display()),
        })?;
        let mut written = Vec::new();
        for (path, text) in &self.files {
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::write(&file, text)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            written.push(file);
        }
        Ok(written)
    }
}

/// `keyrot:handler@0.4.0`, from the embedded `wit/handler.wit`.
fn contract_version() -> String {
    let handler = CONTRACT[0].1;
    handler
        .lines()
        .find_map(|l| l.strip_prefix("package ")?.strip_suffix(';'))
        .unwrap_or("keyrot:handler")
        .to_string()
}

/// A name that is a valid crate, npm package and file name alike:
/// lower-case words of letters and digits joined by `-`, starting with a
/// letter, at most 64 characters.
fn check_name(name: &str) -> Result<(), String> {
    let words_ok = name.split('-').all(|word| {
        !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if name.len() <= 64 && name.starts_with(|c: char| c.is_ascii_lowercase()) && words_ok {
        return Ok(());
    }
    Err(format!(
        "'{}' is not a handler name keyrot can use: lower-case letters, digits and single \
         hyphens, starting with a letter, at most 64 characters (e.g. vault-kv)",
        crate::text::escape_control(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The package's root: where cargo runs unit tests.
    fn root() -> PathBuf {
        PathBuf::from(".")
    }

    /// Every file under `dir`, relative to it, skipping `skip` (names of
    /// directories directly inside it).
    fn files_under(dir: &Path, skip: &[&str]) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, skip: &[&str], found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if skip.contains(&rel.as_str()) {
                    continue;
                }
                if path.is_dir() {
                    walk(base, &path, skip, found);
                } else {
                    found.push(rel);
                }
            }
        }
        let mut found = Vec::new();
        walk(dir, dir, skip, &mut found);
        found.sort();
        found
    }

    #[test]
    fn the_built_in_contract_is_wit_word_for_word() {
        let wit = root().join("wit");
        // Everything in wit/ but the frozen older versions and the reporter.
        let skip: Vec<String> = std::fs::read_dir(&wit)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n == "reporter" || n.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        let skip: Vec<&str> = skip.iter().map(String::as_str).collect();
        let mut embedded: Vec<String> = CONTRACT.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, files_under(&wit, &skip), "the contract's files");
        for (path, text) in CONTRACT {
            let file = std::fs::read_to_string(wit.join(path)).unwrap();
            assert_eq!(*text, file, "wit/{path} differs from the one built in");
        }
        assert!(contract_version().starts_with("keyrot:handler@"));
    }

    #[test]
    fn the_built_in_templates_are_plugins_templates() {
        for lang in Lang::ALL {
            let dir = root().join("plugins/templates").join(lang.as_str());
            let mut embedded: Vec<String> =
                lang.files().iter().map(|(p, _)| p.to_string()).collect();
            embedded.sort();
            assert_eq!(embedded, files_under(&dir, &[]), "{lang:?}'s files");
            for (path, text) in lang.files() {
                assert_eq!(*text, std::fs::read_to_string(dir.join(path)).unwrap());
            }
        }
    }

    #[test]
    fn a_project_gets_its_name_and_the_contract() {
        let project = Project::new("vault-kv", Lang::Rust).unwrap();
        let file = |path: &str| {
            let found = project.files.iter().find(|(p, _)| p == path);
            found.unwrap_or_else(|| panic!("no {path}")).1.clone()
        };
        assert!(file("Cargo.toml").contains("name = \"vault-kv\""));
        assert!(file("src/lib.rs").contains("name: \"vault-kv\".into()"));
        assert!(file("README.md").contains("release/vault_kv.wasm"));
        assert_eq!(file("wit/handler.wit"), CONTRACT[0].1);
        assert_eq!(
            project.component,
            "target/wasm32-wasip2/release/vault_kv.wasm"
        );
        assert!(project.files.iter().all(|(_, t)| !t.contains(PLACEHOLDER)));

        let js = Project::new("vault-kv", Lang::Javascript).unwrap();
        let paths: Vec<&str> = js.files.iter().map(|(p, _)| p.as_str()).collect();
        assert!(
            paths.contains(&"wit/deps/keyrot-handler/handler.wit"),
            "{paths:?}"
        );
        assert!(paths.contains(&"wit/deps/config/store.wit"), "{paths:?}");
        assert_eq!(js.build, "npm install && npm run build");
        let py = Project::new("vault-kv", Lang::Python).unwrap();
        assert!(py.build.ends_with("-o vault-kv.wasm"), "{}", py.build);
    }

    #[test]
    fn names_must_fit_every_toolchain() {
        for good in ["a", "vault-kv", "s3-store2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Vault",
            "-a",
            "a-",
            "a--b",
            "1a",
            "a_b",
            "a.b",
            "a/b",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}

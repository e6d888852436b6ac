//! Plugin start-up, cold and warm: load (compile, or read the compiled-code
//! cache) + instantiate + call `describe` + call a no-op `preflight`. Warm
//! starts are measured unpinned (the cache knows the file's sha256) and
//! pinned with `--plugin-sha256` (the cache's record counts when it names
//! the pin, so neither start hashes the file).
//!
//! A benchmark, not a test: it prints numbers and asserts nothing.
//!
//! ```sh
//! scripts/build-plugins.sh            # the plugins to measure
//! cargo bench --bench startup         # or: -- path/to/plugin.wasm ...
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyrot::host::{CacheMode, LoadOptions, Plugin, Sandbox, WasmHandler};
use keyrot::{NewKeyHandler, Rotation};

/// Runs per measurement; the median is reported.
const RUNS: usize = 5;

#[tokio::main]
async fn main() {
    let args: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    let plugins = if args.is_empty() {
        default_plugins()
    } else {
        args
    };
    let cache = tempfile::tempdir().expect("temp cache dir");
    println!(
        "{:<24} {:>9} {:>12} {:>12} {:>12} {:>8}",
        "plugin", "size", "cold (ms)", "warm (ms)", "pinned (ms)", "speedup"
    );
    for path in plugins {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let cold = median(RUNS, || start(&path, CacheMode::Disabled, None)).await;
        let warm_cache = CacheMode::Dir(cache.path().to_path_buf());
        // Prime the cache; its sha256 is the pin.
        let (_, sha256) = start(&path, warm_cache.clone(), None).await;
        let warm = median(RUNS, || start(&path, warm_cache.clone(), None)).await;
        let pinned = median(RUNS, || {
            start(&path, warm_cache.clone(), Some(sha256.clone()))
        })
        .await;
        println!(
            "{:<24} {:>8.1}M {:>12.1} {:>12.1} {:>12.1} {:>7.0}x",
            path.file_name().unwrap().to_string_lossy(),
            size as f64 / 1e6,
            ms(cold),
            ms(warm),
            ms(pinned),
            cold.as_secs_f64() / warm.as_secs_f64()
        );
    }
}

/// The plugins `scripts/build-plugins.sh` produces, where present.
fn default_plugins() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/target");
    [
        "wasm32-wasip2/release/hello.wasm",
        "components/c-hello.wasm",
        "components/python-hello.wasm",
        "components/js-hello.wasm",
    ]
    .iter()
    .map(|p| root.join(p))
    .filter(|p| p.exists())
    .collect()
}

/// One start: load, instantiate + describe, instantiate + preflight.
/// Returns how long it took and the plugin's sha256.
async fn start(path: &Path, cache: CacheMode, pin: Option<String>) -> (Duration, String) {
    let begin = Instant::now();
    let options = LoadOptions {
        cache,
        expected_sha256: pin,
    };
    let plugin = Plugin::load(path, &options).expect("load plugin");
    let sha256 = plugin.sha256().to_string();
    let handler = WasmHandler::new(plugin, Sandbox::default())
        .await
        .expect("plugin starts");
    let rotation = Rotation {
        user_name: "bench".into(),
        current_key_id: None,
        account_id: None,
        abandoned_key_ids: Vec::new(),
    };
    // Handlers' preflight may check settings; only the call itself matters.
    let _ = handler
        .preflight(&rotation, &keyrot::HandlerLog::new())
        .await;
    (begin.elapsed(), sha256)
}

async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (Duration, String)>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(f().await.0);
    }
    times.sort();
    times[runs / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

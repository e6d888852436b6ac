//! The floor for a fleet rotation: the IAM calls one rotation makes, made
//! straight through aws-sdk-iam, N users at a time, with no plugin, no
//! journal, no checks. What keyrot spends above this is its own cost.
//!
//! Per user: ListAccessKeys, CreateAccessKey, ListAccessKeys, then
//! DeleteAccessKey for each key the first listing showed. A user starts and
//! ends with one key, so runs can be repeated against the same users.
//!
//! ```sh
//! export AWS_ENDPOINT_URL=http://127.0.0.1:5050 AWS_ACCESS_KEY_ID=testing \
//!        AWS_SECRET_ACCESS_KEY=testing
//! cargo bench --bench iam_baseline -- --setup 500 --users-file users.txt
//! cargo bench --bench iam_baseline -- --users-file users.txt --concurrency 8
//! ```
//!
//! `scripts/bench-fleet.sh` runs it against moto beside keyrot itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_iam::Client;
use aws_sdk_iam::config::retry::RetryConfig;
use clap::Parser;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Rotate IAM users' access keys with bare SDK calls, N at a time.
#[derive(Parser)]
struct Args {
    /// The users, one a line; `#` comments and blank lines are ignored
    /// (keyrot's --users-file format). With --setup, written.
    #[arg(long, value_name = "FILE")]
    users_file: PathBuf,

    /// Users rotated at a time.
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,

    /// Instead of rotating: create N users (bench-0000, ...) with one key
    /// each and write their names to --users-file.
    #[arg(long, value_name = "N")]
    setup: Option<usize>,

    /// Ignored: `cargo bench` passes it to every benchmark.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.concurrency == 0 {
        fail("--concurrency must be at least 1");
    }
    // The endpoint and credentials come from the environment
    // (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as for keyrot.
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .retry_config(RetryConfig::standard().with_max_attempts(10))
        .load()
        .await;
    let client = Client::new(&config);
    let begin = Instant::now();
    match args.setup {
        Some(count) => {
            let users: Vec<String> = (0..count).map(|i| format!("bench-{i:04}")).collect();
            let failed = for_each(&client, &users, args.concurrency, create_user).await;
            if failed > 0 {
                fail(&format!("{failed} of {count} users could not be created"));
            }
            let mut text = users.join("\n");
            text.push('\n');
            std::fs::write(&args.users_file, text)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", args.users_file.display())));
            println!(
                "created {count} users with one key each in {:.2} s; names in {}",
                secs(begin.elapsed()),
                args.users_file.display()
            );
        }
        None => {
            let users = read_users(&args.users_file);
            let failed = for_each(&client, &users, args.concurrency, rotate).await;
            println!(
                "rotated {} of {} users in {:.2} s (concurrency {})",
                users.len() - failed,
                users.len(),
                secs(begin.elapsed()),
                args.concurrency
            );
            if failed > 0 {
                std::process::exit(1);
            }
        }
    }
}

/// Runs `job` for every user, `concurrency` at a time; returns how many
/// failed (each failure is printed).
async fn for_each<F, Fut>(client: &Client, users: &[String], concurrency: usize, job: F) -> usize
where
    F: Fn(Client, String) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for user in users {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let work = job(client.clone(), user.clone());
        let user = user.clone();
        tasks.spawn(async move {
            let result = work.await;
            drop(permit);
            result.map_err(|e| format!("{user}: {e}"))
        });
    }
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.expect("task panicked") {
            eprintln!("{e}");
            failed += 1;
        }
    }
    failed
}

/// The IAM calls of one rotation, nothing else.
async fn rotate(client: Client, user: String) -> Result<(), String> {
    let old = list_keys(&client, &user).await?;
    let created = client
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| format!("CreateAccessKey: {}", e.into_service_error()))?;
    let new = created
        .access_key()
        .map(|k| k.access_key_id().to_string())
        .ok_or("CreateAccessKey returned no key")?;
    let now = list_keys(&client, &user).await?;
    if !now.contains(&new) {
        return Err(format!("the new key {new} is not listed"));
    }
    for key in old {
        client
            .delete_access_key()
            .user_name(&user)
            .access_key_id(&key)
            .send()
            .await
            .map_err(|e| format!("DeleteAccessKey {key}: {}", e.into_service_error()))?;
    }
    Ok(())
}

async fn list_keys(client: &Client, user: &str) -> Result<Vec<String>, String> {
    let listed = client
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .map_err(|e| format!("ListAccessKeys: {}", e.into_service_error()))?;
    Ok(listed
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id().map(str::to_string))
        .collect())
}

async fn create_user(client: Client, user: String) -> Result<(), String> {
    client
        .create_user()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| format!("CreateUser: {}", e.into_service_error()))?;
    client
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .map_err(|e| format!("CreateAccessKey: {}", e.into_service_error()))?;
    Ok(())
}

/// keyrot's --users-file format: one name a line, `#` comments, blank lines.
fn read_users(path: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
    let users: Vec<String> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    if users.is_empty() {
        fail(&format!("{} names no user", path.display()));
    }
    users
}

fn fail(message: &str) -> ! {
    eprintln!("iam_baseline: {message}");
    std::process::exit(2)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

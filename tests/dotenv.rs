//! The C plugins, end to end through the binary against moto: `dotenv`
//! (writes the new key into a `.env` file in a granted directory) and
//! `c-hello` (the README's C example). Both are built by
//! `scripts/build-plugins.sh c` into `plugins/target/components`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use crate::util::{Moto, plugin, show};

fn path(name: &str) -> String {
    plugin(name).to_string_lossy().into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the dotenv plugin for user `ci-bot` with `extra` flags.
fn rotate(moto: &Moto, extra: &[&str]) -> Output {
    let dotenv = path("dotenv");
    let mut args = vec![
        "--plugin",
        &dotenv,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--plugin-log",
        "show",
    ];
    args.extend_from_slice(extra);
    let out = moto.keyrot(&args);
    assert_no_secret(moto, &out);
    out
}

/// `--allow-dir DIR:/app`, the grant the plugin's README documents.
fn grant(dir: &Path) -> String {
    format!("{}:/app", dir.display())
}

/// No secret moto ever issued appears in keyrot's stdout or stderr.
fn assert_no_secret(moto: &Moto, out: &Output) {
    let all = show(out);
    for secret in moto.all_secrets() {
        assert!(
            !all.contains(&secret),
            "a secret leaked into the output:\n{all}"
        );
    }
}

/// The names in `dir`, sorted: temporary and probe files must not remain.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The one secret moto issued between `before` and now.
fn new_secret(moto: &Moto, before: &[String]) -> String {
    let issued: Vec<String> = moto
        .all_secrets()
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert_eq!(issued.len(), 1, "exactly one key was created");
    issued[0].clone()
}

#[tokio::test]
async fn dotenv_rewrites_only_the_two_values_in_place() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let before = moto.all_secrets();
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let template = "# app settings\n\
                    \n\
                    DATABASE_URL=postgres://db/app # the main db\n\
                    AWS_ACCESS_KEY_ID={id}\n\
                    OTHER='  spaced  '\n\
                    export AWS_SECRET_ACCESS_KEY=\"{secret}\"   # rotated by keyrot\n\
                    \n\
                    LAST=1";
    let original = template
        .replace("{id}", &old)
        .replace("{secret}", "old-secret");
    std::fs::write(&env, &original).unwrap();
    // Readable by the app's group, owned by another user where the test
    // may chown (as root): both must survive, whatever keyrot's umask.
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).unwrap();
    let _ = std::os::unix::fs::chown(&env, Some(4242), Some(4243));
    let before_meta = std::fs::metadata(&env).unwrap();

    let out = rotate(
        &moto,
        &["--allow-dir", &grant(dir.path()), "-c", "path=/app/.env"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let new = &keys[0].0;
    assert_ne!(new, &old);
    let secret = new_secret(&moto, &before);
    // Every other byte is as it was; the values changed in place, the
    // quotes and the `export ` prefix kept.
    let expected = template.replace("{id}", new).replace("{secret}", &secret);
    assert_eq!(std::fs::read_to_string(&env).unwrap(), expected);
    // Rewritten in place: the same file, mode and owner; no backup left.
    assert_eq!(mode(&env), 0o640);
    let after_meta = std::fs::metadata(&env).unwrap();
    assert_eq!(
        (after_meta.ino(), after_meta.uid(), after_meta.gid()),
        (before_meta.ino(), before_meta.uid(), before_meta.gid())
    );
    assert_eq!(entries(dir.path()), [".env"]);
    assert!(
        stderr(&out).contains(&format!(
            "[dotenv] AWS_ACCESS_KEY_ID in /app/.env now holds key {new}"
        )),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn dotenv_creates_a_missing_file_with_custom_variable_names() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let before = moto.all_secrets();
    let dir = tempfile::tempdir().unwrap();
    let out = rotate(
        &moto,
        &[
            "--allow-dir",
            &grant(dir.path()),
            "-c",
            "path=/app/prod.env",
            "-c",
            "key-id-variable=APP_AWS_KEY",
            "-c",
            "secret-key-variable=APP_AWS_SECRET",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    let secret = new_secret(&moto, &before);
    let env = dir.path().join("prod.env");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        format!("APP_AWS_KEY={new}\nAPP_AWS_SECRET={secret}\n")
    );
    assert_eq!(mode(&env), 0o600);
    assert_eq!(entries(dir.path()), ["prod.env"]);
}

#[tokio::test]
async fn dotenv_refuses_to_clobber_a_file_holding_another_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let original = "AWS_ACCESS_KEY_ID=AKIAOTHERUSERKEY1234\nAWS_SECRET_ACCESS_KEY=theirs\n";
    std::fs::write(&env, original).unwrap();

    let out = rotate(
        &moto,
        &["--allow-dir", &grant(dir.path()), "-c", "path=/app/.env"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), original);
    assert_eq!(entries(dir.path()), [".env"]);
    let masked_old = format!("{}…{}", &old[..4], &old[old.len() - 4..]);
    assert!(
        stderr(&out).contains(&format!(
            "/app/.env sets AWS_ACCESS_KEY_ID to key AKIA…1234 (line 1), \
             not the key being rotated ({masked_old}): refusing to overwrite it; \
             pass --config force=true to replace it anyway"
        )),
        "{}",
        show(&out)
    );

    // force=true replaces it, with a warning.
    let out = rotate(
        &moto,
        &[
            "--allow-dir",
            &grant(dir.path()),
            "-c",
            "path=/app/.env",
            "-c",
            "force=true",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = &moto.keys("ci-bot").await[0].0;
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.starts_with(&format!("AWS_ACCESS_KEY_ID={new}\n")),
        "{text}"
    );
    assert!(
        stderr(&out).contains("replacing it (force=true)"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn dotenv_without_a_granted_directory_fails_before_any_key_exists() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let out = rotate(&moto, &["-c", "path=/app/.env"]);
    // It declares the directory of `path`: named when loaded (exit 2).
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
    assert!(
        stderr(&out).contains("needs directory /app (read and write")
            && stderr(&out).contains("add --allow-dir HOST_DIR:/app"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn dotenv_with_a_read_only_grant_fails_before_any_key_exists() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let original = format!("AWS_ACCESS_KEY_ID={old}\nAWS_SECRET_ACCESS_KEY=s\n");
    std::fs::write(&env, &original).unwrap();
    let read_only = format!("{}:ro", grant(dir.path()));

    let out = rotate(&moto, &["--allow-dir", &read_only, "-c", "path=/app/.env"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), original);
    assert_eq!(entries(dir.path()), [".env"]);
    assert!(
        stderr(&out).contains("needs directory /app (read and write"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn dotenv_refuses_a_symbolic_link_before_any_key_exists() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real.env"), "A=1\n").unwrap();
    std::os::unix::fs::symlink("real.env", dir.path().join(".env")).unwrap();

    let out = rotate(
        &moto,
        &["--allow-dir", &grant(dir.path()), "-c", "path=/app/.env"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert!(
        stderr(&out).contains("/app/.env is a symbolic link"),
        "{}",
        show(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("real.env")).unwrap(),
        "A=1\n"
    );
}

#[tokio::test]
async fn c_hello_rotates_a_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let hello = path("c-hello");
    let out = moto.keyrot(&[
        "--plugin",
        &hello,
        "--user",
        "ci-bot",
        "--endpoint-url",
        &moto.url,
        "--plugin-log",
        "show",
        "--config",
        "greeting=hi",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_no_secret(&moto, &out);
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let new = &keys[0].0;
    assert_ne!(new, &old);
    assert!(
        stderr(&out).contains(&format!("[c-hello] hi, new key {new}")),
        "{}",
        show(&out)
    );

    let out = moto.keyrot(&["plugin", "inspect", &hello]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("c-hello 0.1.0: "), "{}", show(&out));
    assert!(text.contains("greeting"), "{text}");
}

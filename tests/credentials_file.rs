//! End-to-end tests of `aws_credentials_file.wasm` through the binary: the
//! file it writes must be one the AWS SDK itself reads the new key from,
//! with every other profile and comment untouched.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_iam::config::ProvideCredentials;

use crate::util::{Moto, show};

/// Reads a profile's credentials the way the AWS SDK does.
async fn sdk_credentials(file: &Path, profile: &str) -> (String, String) {
    sdk_credentials_from(EnvConfigFileKind::Credentials, file, profile).await
}

/// Reads a profile's credentials from a credentials or config file, the way
/// the AWS SDK does.
async fn sdk_credentials_from(
    kind: EnvConfigFileKind,
    file: &Path,
    profile: &str,
) -> (String, String) {
    let files = EnvConfigFiles::builder()
        .include_default_config_file(false)
        .include_default_credentials_file(false)
        .with_file(kind, file)
        .build();
    let creds = ProfileFileCredentialsProvider::builder()
        .profile_files(files)
        .profile_name(profile)
        .build()
        .provide_credentials()
        .await
        .expect("the SDK reads the profile");
    (
        creds.access_key_id().to_string(),
        creds.secret_access_key().to_string(),
    )
}

/// A credentials file whose `ci` profile holds `key`, between two profiles
/// and comments that must survive byte for byte.
fn credentials_with(key: &str) -> String {
    format!(
        "# managed by hand, keep this comment\n\
         [default]\n\
         aws_access_key_id = AKIADEFAULTDEFAULT00\n\
         aws_secret_access_key = default-secret\n\
         \n\
         [ci]\n\
         aws_access_key_id = {key}\n\
         aws_secret_access_key = old-secret-value\n\
         region = eu-west-1\n\
         \n\
         ; the last profile\n\
         [other]\n\
         aws_access_key_id = AKIAOTHEROTHEROTHER0\n\
         aws_secret_access_key = other-secret\n"
    )
}

fn run(moto: &Moto, dir: &Path, extra: &[&str]) -> std::process::Output {
    let grant = format!("{}:/aws", dir.display());
    let mut args = vec![
        "--allow-dir",
        &grant,
        "--config",
        "path=/aws/credentials",
        "--config",
        "profile=ci",
    ];
    args.extend_from_slice(extra);
    moto.rotate("aws_credentials_file", &args, &[])
}

#[tokio::test]
async fn writes_the_new_key_into_its_profile_only() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let before = credentials_with(&old);
    std::fs::write(&file, &before).unwrap();
    // Group-readable, owned by another user where the test may chown (as
    // root): both must survive, whatever keyrot's umask.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let _ = std::os::unix::fs::chown(&file, Some(4242), Some(4243));
    let before_meta = std::fs::metadata(&file).unwrap();

    let out = run(&moto, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let keys = moto.keys("ci-bot").await;
    assert_eq!(keys.len(), 1);
    let new = &keys[0].0;
    let secret = moto
        .keys_with_secrets()
        .into_iter()
        .find(|(id, _)| id == new)
        .unwrap()
        .1;
    assert_eq!(
        sdk_credentials(&file, "ci").await,
        (new.clone(), secret.clone())
    );
    assert_eq!(
        sdk_credentials(&file, "default").await,
        ("AKIADEFAULTDEFAULT00".into(), "default-secret".into())
    );
    // Everything but the two values is byte-identical, in order.
    let after = std::fs::read_to_string(&file).unwrap();
    let expected = before
        .replace(&old, new)
        .replace("old-secret-value", &secret);
    assert_eq!(after, expected);
    // Rewritten in place: the same file, mode and owner.
    let after_meta = std::fs::metadata(&file).unwrap();
    assert_eq!(after_meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(
        (after_meta.ino(), after_meta.uid(), after_meta.gid()),
        (before_meta.ino(), before_meta.uid(), before_meta.gid())
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );
}

#[tokio::test]
async fn creates_the_file_when_there_is_none() {
    let (moto, _) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(&moto, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    let file = dir.path().join("credentials");
    let (id, _) = sdk_credentials(&file, "ci").await;
    assert_eq!(id, new);
    // A new file is private (keyrot's umask), created atomically.
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn refuses_to_clobber_a_profile_holding_another_key() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let before = credentials_with("AKIASOMEONEELSE00000");
    std::fs::write(&file, &before).unwrap();
    let out = run(&moto, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("preflight failed"),
        "{}",
        show(&out)
    );
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[tokio::test]
async fn a_read_only_grant_fails_before_any_key_exists() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let grant = format!("{}:/aws:ro", dir.path().display());
    let out = moto.rotate(
        "aws_credentials_file",
        &["--allow-dir", &grant, "--config", "path=/aws/credentials"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
}

#[tokio::test]
async fn without_a_directory_grant_nothing_is_written() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let out = moto.rotate(
        "aws_credentials_file",
        &["--config", "path=/aws/credentials"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;
    assert_eq!(moto.all_secrets().len(), 1, "no key was created");
}

#[tokio::test]
async fn a_config_file_gets_profile_sections() {
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    // In ~/.aws/config a profile is [profile NAME]; a bare [ci] is no profile.
    let before = format!(
        "[default]\nregion = us-east-1\n\n[ci]\nregion = eu-west-1\n\n\
         [profile ci]\nregion = eu-west-1\naws_access_key_id = {old}\n\
         aws_secret_access_key = old-secret\n"
    );
    std::fs::write(&file, &before).unwrap();
    let out = run(&moto, dir.path(), &["--config", "path=/aws/config"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    let secret = moto
        .keys_with_secrets()
        .into_iter()
        .find(|(id, _)| *id == new)
        .unwrap()
        .1;
    assert_eq!(
        sdk_credentials_from(EnvConfigFileKind::Config, &file, "ci").await,
        (new.clone(), secret.clone())
    );
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        after,
        before.replace(&old, &new).replace("old-secret", &secret)
    );

    // A profile it does not have yet is added as [profile NAME].
    let out = run(
        &moto,
        dir.path(),
        &["--config", "path=/aws/config", "--config", "profile=deploy"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let newer = moto.keys("ci-bot").await[0].0.clone();
    assert!(std::fs::read_to_string(&file).unwrap().contains(&format!(
        "\n[profile deploy]\naws_access_key_id = {newer}\n"
    )),);
    assert_eq!(
        sdk_credentials_from(EnvConfigFileKind::Config, &file, "deploy")
            .await
            .0,
        newer
    );
}

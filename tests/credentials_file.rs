//! End-to-end tests of `aws_credentials_file.wasm` through the binary: the
//! file it writes must be one the AWS SDK itself reads the new key from,
//! with every other profile and comment untouched.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_iam::config::ProvideCredentials;

use serde_json::{Value, json};

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
    // It declares that it writes there: refused when loaded (exit 2).
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs directory /aws (read and write"),
        "{}",
        show(&out)
    );
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
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("which is not granted: add --allow-dir HOST_DIR:/aws"),
        "{}",
        show(&out)
    );
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
    let profiles = botocore_reads(&file, true);
    assert_eq!(profiles["ci"]["aws_access_key_id"], new.as_str());
    assert_eq!(profiles["ci"]["aws_secret_access_key"], secret.as_str());
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

/// What the AWS CLI and boto3 read from `file`: botocore's own parser
/// (`raw_config_parse`, which uses Python's configparser) run with python3,
/// each section's keys as JSON; for a config file the profiles
/// (`load_config`). `{"error": NAME}` when botocore refuses the file.
fn botocore_reads(file: &Path, config: bool) -> Value {
    let script = "import json, sys\n\
        from botocore.configloader import load_config, raw_config_parse\n\
        try:\n\
        \x20   path = sys.argv[1]\n\
        \x20   parsed = load_config(path)['profiles'] if sys.argv[2] == 'config' else raw_config_parse(path)\n\
        \x20   print(json.dumps(parsed))\n\
        except Exception as e:\n\
        \x20   print(json.dumps({'error': type(e).__name__}))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .arg(if config { "config" } else { "credentials" })
        .output()
        .expect("python3 runs (botocore comes with moto)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("botocore's reading as JSON")
}

#[tokio::test]
async fn the_file_is_read_and_written_as_the_aws_cli_parses_it() {
    // Corners where configparser (botocore) and the SDKs' rules differ:
    // `key: value`, an indented comment line, an inline `# text` that is
    // part of the value, a section name with spaces, nested sub-properties.
    let text = "# top\n\
                [default]\n\
                aws_access_key_id: AKIADEFAULTDEFAULT00\n\
                \x20 ; an indented comment\n\
                aws_secret_access_key = default # not a comment\n\
                \n\
                [ci]\n\
                aws_access_key_id = {old} # rotated by hand\n\
                aws_secret_access_key: old-secret\n\
                aws_session_token = stale\n\
                s3 =\n\
                \x20 max_concurrent_requests = 20\n\
                region = eu-west-1\n\
                \n\
                [ ci ]\n\
                aws_access_key_id = AKIASPACEDSPACED0000\n";
    let (moto, old) = Moto::start_with_user("ci-bot").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(&file, text.replace("{old}", &old)).unwrap();
    let before = botocore_reads(&file, false);
    assert_eq!(
        before["ci"]["aws_access_key_id"],
        format!("{old} # rotated by hand"),
        "botocore keeps the inline text: the key in the file is not the current one"
    );

    let out = run(&moto, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "refused: {}", show(&out));
    let out = run(&moto, dir.path(), &["--config", "force=true"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = moto.keys("ci-bot").await[0].0.clone();
    let secret = moto
        .keys_with_secrets()
        .into_iter()
        .find(|(id, _)| *id == new)
        .unwrap()
        .1;
    let mut expected = before.clone();
    expected["ci"]["aws_access_key_id"] = json!(new);
    expected["ci"]["aws_secret_access_key"] = json!(secret);
    expected["ci"]
        .as_object_mut()
        .unwrap()
        .remove("aws_session_token");
    assert_eq!(botocore_reads(&file, false), expected);
}

#[tokio::test]
async fn a_file_the_aws_cli_refuses_is_refused_before_any_key_exists() {
    let cases = [
        // botocore (configparser, strict) refuses these:
        "[ci]\naws_access_key_id = AKIAOLD\n[other]\n[ci]\nregion = x\n",
        "[ci]\naws_access_key_id = AKIAOLD\nAWS_ACCESS_KEY_ID = AKIAOTHER\n",
        "[ci]\ns3 =\n  not a sub property\n",
        "no section\n[ci]\n",
    ];
    for text in cases {
        let (moto, old) = Moto::start_with_user("ci-bot").await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(&file, text).unwrap();
        assert!(
            botocore_reads(&file, false).get("error").is_some(),
            "botocore refuses {text:?}"
        );
        let out = run(&moto, dir.path(), &["--config", "force=true"]);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is not a valid credentials file"),
            "{}",
            show(&out)
        );
        moto.assert_only_key("ci-bot", &old).await;
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
}

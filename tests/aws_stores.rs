//! The AWS Secrets Manager and SSM Parameter Store handlers through the real
//! binary, against moto with IAM authorization on: keyrot's own identity
//! may rotate keys but is denied both services, so a write that succeeds
//! was signed by the host as the `--aws-sign-role-arn` role (moto checks
//! the SigV4 signature and the role's policy). Also: what the stores keep
//! (other fields, KMS key, tags, resource policy, tier), a request to a
//! host outside `--aws-sign` going out unsigned, and bad signing input
//! refused before any key. Setup and checks use boto3, an independent
//! client.

use serde_json::{Value, json};

use crate::util::{Moto, TestServer, plugin, show};

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "secrets-writer";

/// keyrot's own identity: IAM rotation and assuming the signing role, and
/// an explicit deny on both stores.
fn operator_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Effect": "Allow", "Action": ["iam:*", "sts:*"], "Resource": "*" },
            { "Effect": "Deny", "Action": ["secretsmanager:*", "ssm:*", "kms:*"], "Resource": "*" },
        ],
    })
}

/// Runs `script` with boto3 against moto (auth must be relaxed, or the
/// credentials given); its last stdout line is JSON.
fn boto(moto: &Moto, script: &str) -> Value {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let prelude = "import boto3, json, os, sys\n\
        def client(name):\n    return boto3.client(name, endpoint_url=os.environ['URL'], \
        region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n";
    let out = std::process::Command::new(&python)
        .args(["-c", &format!("{prelude}{script}")])
        .env("URL", &moto.url)
        .output()
        .expect("run the project's python (scripts/setup.sh makes it)");
    assert!(out.status.success(), "boto3 script failed: {}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap()
}

/// moto with the operator, user ci-bot (one key, returned), the signing
/// role (allowed both stores) and a KMS key (returned).
async fn setup() -> (Moto, String, String) {
    let (moto, key) = Moto::start_with_policy("operator", &operator_policy()).await;
    moto.relax_auth();
    let kms = boto(
        &moto,
        &format!(
            r#"
iam = client("iam")
iam.create_role(RoleName="{ROLE}", AssumeRolePolicyDocument=json.dumps({{
    "Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:user/operator"}},
                    "Action": "sts:AssumeRole"}}]}}))
iam.put_role_policy(RoleName="{ROLE}", PolicyName="stores", PolicyDocument=json.dumps({{
    "Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Action": ["secretsmanager:*", "ssm:*", "kms:*"], "Resource": "*"}}]}}))
key = client("kms").create_key(Description="ci secrets")["KeyMetadata"]["KeyId"]
print(json.dumps(key))
"#
        ),
    );
    (moto, key, kms.as_str().unwrap().to_string())
}

/// keyrot with `plugin`, its settings, the grant to moto's host and the
/// signing role; `extra` last.
fn run(
    moto: &Moto,
    plugin_name: &str,
    settings: &[(&str, &str)],
    extra: &[&str],
) -> std::process::Output {
    let wasm = plugin(plugin_name);
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}");
    let mut args: Vec<String> = vec![
        "--plugin".into(),
        wasm.to_string_lossy().into_owned(),
        "--user".into(),
        "ci-bot".into(),
        "--endpoint-url".into(),
        moto.url.clone(),
        "--allow-host".into(),
        moto.url.clone(),
        "--output".into(),
        "json".into(),
        "--plugin-log".into(),
        "show".into(),
    ];
    for (name, value) in settings {
        args.push("-c".into());
        args.push(format!("{name}={value}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--no-sign") {
        args.extend([
            "--aws-sign".into(),
            format!("{}=secretsmanager/us-east-1", moto.url),
            "--aws-sign-role-arn".into(),
            role,
        ]);
    }
    args.retain(|a| a != "--no-sign");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = moto.keyrot(&args);
    let printed = show(&out);
    for secret in moto.all_secrets() {
        assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
    }
    out
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

/// The secret of the key moto issued as `id`.
fn secret_of(moto: &Moto, id: &str) -> String {
    moto.keys_with_secrets()
        .into_iter()
        .find(|(k, _)| k == id)
        .expect("moto issued the key")
        .1
}

#[tokio::test]
async fn secrets_manager_gets_a_new_current_version_signed_by_the_host() {
    let (moto, old, kms) = setup().await;
    boto(
        &moto,
        &format!(
            r#"
sm = client("secretsmanager")
arn = sm.create_secret(Name="ci/deploy", KmsKeyId="{kms}",
    SecretString=json.dumps({{"AWS_ACCESS_KEY_ID": "{old}", "AWS_SECRET_ACCESS_KEY": "old-secret",
                              "AWS_REGION": "eu-west-1"}}),
    Tags=[{{"Key": "team", "Value": "platform"}}])["ARN"]
sm.put_resource_policy(SecretId="ci/deploy", ResourcePolicy=json.dumps({{
    "Version": "2012-10-17", "Statement": [{{"Effect": "Deny", "Principal": "*",
    "Action": "secretsmanager:DeleteSecret", "Resource": "*"}}]}}))
print(json.dumps(arn))
"#
        ),
    );
    moto.enforce_auth();
    // Unsigned (no --aws-sign): moto refuses, nothing changes.
    let out = run(
        &moto,
        "aws_secrets_manager",
        &[
            ("secret-id", "ci/deploy"),
            ("endpoint-url", &moto.url),
            ("region", "us-east-1"),
        ],
        &["--no-sign"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    moto.assert_only_key("ci-bot", &old).await;

    let out = run(
        &moto,
        "aws_secrets_manager",
        &[
            ("secret-id", "ci/deploy"),
            ("endpoint-url", &moto.url),
            ("region", "us-east-1"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json_of(&out);
    assert_eq!(report["outcome"], "rotated", "{report}");
    let new = report["new_key"]["access_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let log = report["handler_log"].to_string();
    assert!(
        log.contains(&format!(
            "signed by the host as role arn:aws:iam::{ACCOUNT}:role/{ROLE}"
        )),
        "the report says who signed: {log}"
    );
    moto.assert_only_key("ci-bot", &new).await;

    moto.relax_auth();
    let seen = boto(
        &moto,
        r#"
sm = client("secretsmanager")
cur = sm.get_secret_value(SecretId="ci/deploy")
prev = sm.get_secret_value(SecretId="ci/deploy", VersionStage="AWSPREVIOUS")
d = sm.describe_secret(SecretId="ci/deploy")
pol = sm.get_resource_policy(SecretId="ci/deploy").get("ResourcePolicy")
print(json.dumps({"current": json.loads(cur["SecretString"]), "previous": json.loads(prev["SecretString"]),
                  "kms": d.get("KmsKeyId"), "tags": d.get("Tags"), "policy": pol}))
"#,
    );
    assert_eq!(seen["current"]["AWS_ACCESS_KEY_ID"], new.as_str());
    assert_eq!(
        seen["current"]["AWS_SECRET_ACCESS_KEY"],
        secret_of(&moto, &new).as_str()
    );
    assert_eq!(
        seen["current"]["AWS_REGION"], "eu-west-1",
        "other fields are kept"
    );
    assert_eq!(seen["previous"]["AWS_ACCESS_KEY_ID"], old.as_str());
    assert!(seen["kms"].as_str().unwrap().contains(&kms), "{seen}");
    assert_eq!(seen["tags"], json!([{"Key": "team", "Value": "platform"}]));
    assert!(
        seen["policy"].as_str().unwrap().contains("DeleteSecret"),
        "{seen}"
    );
}

#[tokio::test]
async fn a_secret_holding_another_key_is_left_alone() {
    let (moto, old, _) = setup().await;
    boto(
        &moto,
        r#"
client("secretsmanager").create_secret(Name="ci/other",
    SecretString=json.dumps({"AWS_ACCESS_KEY_ID": "AKIAOTHERUSERSKEY123", "AWS_SECRET_ACCESS_KEY": "x"}))
print("null")
"#,
    );
    moto.enforce_auth();
    let out = run(
        &moto,
        "aws_secrets_manager",
        &[
            ("secret-id", "ci/other"),
            ("endpoint-url", &moto.url),
            ("region", "us-east-1"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json_of(&out);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("AKIAOTHERUSERSKEY123"),
        "{report}"
    );
    moto.assert_only_key("ci-bot", &old).await;
}

#[tokio::test]
async fn ssm_parameters_keep_their_kms_key_tier_and_tags() {
    let (moto, old, kms) = setup().await;
    boto(
        &moto,
        &format!(
            r#"
ssm = client("ssm")
ssm.put_parameter(Name="/ci/deploy/key", Type="SecureString", KeyId="{kms}", Tier="Advanced",
    Value=json.dumps({{"AWS_ACCESS_KEY_ID": "{old}", "AWS_SECRET_ACCESS_KEY": "old", "note": "keep"}}),
    Tags=[{{"Key": "team", "Value": "platform"}}])
print("null")
"#
        ),
    );
    moto.enforce_auth();
    // The grant from a job file this time.
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("ssm.toml");
    std::fs::write(
        &job,
        format!(
            "aws-sign = [\"{url}=ssm/us-east-1\"]\n\
             aws-sign-role-arn = \"arn:aws:iam::{ACCOUNT}:role/{ROLE}\"\n",
            url = moto.url
        ),
    )
    .unwrap();
    let out = run(
        &moto,
        "aws_ssm_parameter",
        &[
            ("parameter", "/ci/deploy/key"),
            ("endpoint-url", &moto.url),
            ("region", "us-east-1"),
        ],
        &["--no-sign", "--job", job.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let new = json_of(&out)["new_key"]["access_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    moto.assert_only_key("ci-bot", &new).await;
    moto.relax_auth();
    let seen = boto(
        &moto,
        r#"
ssm = client("ssm")
p = ssm.get_parameter(Name="/ci/deploy/key", WithDecryption=True)["Parameter"]
d = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": ["/ci/deploy/key"]}])["Parameters"][0]
tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/ci/deploy/key")["TagList"]
print(json.dumps({"value": json.loads(p["Value"]), "type": p["Type"], "kms": d.get("KeyId"),
                  "tier": d.get("Tier"), "tags": tags}))
"#,
    );
    assert_eq!(seen["value"]["AWS_ACCESS_KEY_ID"], new.as_str());
    assert_eq!(
        seen["value"]["AWS_SECRET_ACCESS_KEY"],
        secret_of(&moto, &new).as_str()
    );
    assert_eq!(seen["value"]["note"], "keep");
    assert_eq!(seen["type"], "SecureString");
    assert_eq!(seen["kms"], kms.as_str(), "{seen}");
    assert_eq!(seen["tier"], "Advanced");
    assert_eq!(seen["tags"], json!([{"Key": "team", "Value": "platform"}]));
}

/// A request to an allowed host that is not an `--aws-sign` host goes out
/// as the plugin made it: no signature, no credentials. (The http fixture
/// declares both hosts it reaches: the store handlers declare one.)
#[tokio::test]
async fn a_host_outside_the_signing_grant_gets_no_signature() {
    let (moto, _, _) = setup().await;
    moto.enforce_auth();
    let server = TestServer::start(|_| crate::util::Reply::new(200, "{}"));
    let other = server.url.clone();
    let signed = format!("{}/", moto.url);
    let out = run(
        &moto,
        "fixture_http",
        &[("url", &other), ("also", &signed)],
        &["--allow-host", &other],
    );
    // Loaded and run (whatever moto answers an empty signed GET), and the
    // request to moto was signed: the contrast the test is about.
    assert_ne!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains(&format!("GET {signed} signed by the host as role")),
        "{}",
        show(&out)
    );
    let requests = server.requests();
    assert!(!requests.is_empty(), "the plugin reached the other host");
    for request in &requests {
        for header in ["authorization", "x-amz-security-token", "x-amz-date"] {
            assert!(request.header(header).is_none(), "{header} sent to {other}");
        }
    }
}

#[tokio::test]
async fn signing_input_that_cannot_work_fails_before_any_key() {
    let (moto, old, _) = setup().await;
    moto.enforce_auth();
    let wasm = plugin("aws_secrets_manager");
    let wasm = wasm.to_str().unwrap();
    let base = [
        "--plugin",
        wasm,
        "--user",
        "ci-bot",
        "-c",
        "secret-id=x",
        "-c",
        "region=us-east-1",
        "--endpoint-url",
        &moto.url,
        "--allow-host",
        &moto.url,
    ];
    let sign = format!("{}=secretsmanager/us-east-1", moto.url);
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--aws-sign", &sign], "--aws-sign-role-arn"),
        (vec!["--aws-sign-role-arn", &role], "--aws-sign HOST"),
        (
            vec![
                "--aws-sign",
                "http://127.0.0.1:9=secretsmanager/us-east-1",
                "--aws-sign-role-arn",
                &role,
            ],
            "--allow-host http://127.0.0.1:9",
        ),
        (
            vec![
                "--aws-sign",
                "vault.example.com",
                "--aws-sign-role-arn",
                &role,
            ],
            "not an AWS endpoint",
        ),
        (
            vec![
                "--aws-sign",
                &sign,
                "--aws-sign-role-arn",
                "arn:aws:iam::1:user/x",
            ],
            "not an IAM role ARN",
        ),
        (
            vec![
                "--aws-sign",
                &sign,
                "--aws-sign-role-arn",
                &role,
                "--aws-sign-profile",
                "p",
            ],
            "give one",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = base.to_vec();
        args.extend(extra.iter());
        let out = moto.keyrot(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expected),
            "{extra:?}: wanted {expected:?} in {err}"
        );
    }
    // A role keyrot's identity may not assume: the operator's policy now
    // denies sts:AssumeRole on it.
    moto.relax_auth();
    boto(
        &moto,
        &format!(
            r#"
client("iam").put_user_policy(UserName="operator", PolicyName="keyrot", PolicyDocument=json.dumps({{
    "Version": "2012-10-17",
    "Statement": [{{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}},
                  {{"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::{ACCOUNT}:role/{ROLE}"}}]}}))
print("null")
"#
        ),
    );
    moto.enforce_auth();
    let mut args = base.to_vec();
    args.extend(["--aws-sign", &sign, "--aws-sign-role-arn", &role]);
    let out = moto.keyrot(&args);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signing identity"), "{err}");
    moto.assert_only_key("ci-bot", &old).await;
}

//! Whole organizations through the real binary, against moto's
//! Organizations, STS role assumption into member accounts and IAM: nested
//! OUs, suspended accounts, rules per OU, exemptions by tag (valid,
//! expired, unreadable), group, account and OU, owners, `status --org` in
//! text, JSON and CSV, shards that cover every account once, and an
//! organization that cannot be listed or entered, with IAM auth on.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use crate::util::{Moto, plugin, show};

/// The role keyrot enters member accounts through.
const ROLE: &str = "keyrot-member";
/// The account moto's default credentials belong to: the management one.
const MANAGEMENT: &str = "123456789012";
const DAY: i64 = 86_400;

/// An organization in moto: a root, OUs, accounts, and IAM in each.
struct Org {
    moto: Moto,
    orgs: aws_sdk_organizations::Client,
    root: String,
}

impl Org {
    async fn start() -> Org {
        Self::on(Moto::start()).await
    }

    async fn on(moto: Moto) -> Org {
        let orgs = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&moto.url)
                .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
                .build(),
        );
        orgs.create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await
            .expect("create the organization");
        let roots = orgs.list_roots().send().await.expect("list roots");
        let root = roots.roots()[0].id().unwrap().to_string();
        Org { moto, orgs, root }
    }

    async fn ou(&self, parent: &str, name: &str) -> String {
        let out = self
            .orgs
            .create_organizational_unit()
            .parent_id(parent)
            .name(name)
            .send()
            .await
            .expect("create an OU");
        out.organizational_unit().unwrap().id().unwrap().to_string()
    }

    /// A new account under `parent` (an OU, or the root).
    async fn account(&self, name: &str, parent: &str) -> String {
        let out = self
            .orgs
            .create_account()
            .account_name(name)
            .email(format!("{name}@example.com"))
            .send()
            .await
            .expect("create an account");
        let id = out
            .create_account_status()
            .unwrap()
            .account_id()
            .unwrap()
            .to_string();
        if parent != self.root {
            self.orgs
                .move_account()
                .account_id(&id)
                .source_parent_id(&self.root)
                .destination_parent_id(parent)
                .send()
                .await
                .expect("move the account");
        }
        id
    }

    async fn close(&self, account: &str) {
        self.orgs
            .close_account()
            .account_id(account)
            .send()
            .await
            .expect("close the account");
    }

    /// IAM in `account`, as the tests' own admin (through the member role,
    /// or directly in the management account).
    async fn iam(&self, account: &str) -> aws_sdk_iam::Client {
        if account == MANAGEMENT {
            return self.moto.client.clone();
        }
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&self.moto.url)
                .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
                .build(),
        );
        let out = sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/{ROLE}"))
            .role_session_name("tests")
            .send()
            .await
            .expect("assume the member role");
        let c = out.credentials().unwrap();
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&self.moto.url)
                .credentials_provider(Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_string()),
                    None,
                    "tests",
                ))
                .build(),
        )
    }

    /// A user at `path` with `tags` and one active key, whose id is returned.
    async fn user(&self, account: &str, name: &str, path: &str, tags: &[(&str, &str)]) -> String {
        let iam = self.iam(account).await;
        let mut create = iam.create_user().user_name(name).path(path);
        for (key, value) in tags {
            create = create.tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(*key)
                    .value(*value)
                    .build()
                    .unwrap(),
            );
        }
        create.send().await.expect("create user");
        let key = iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .expect("create key");
        key.access_key().unwrap().access_key_id().to_string()
    }

    async fn keys(&self, account: &str, user: &str) -> Vec<String> {
        let iam = self.iam(account).await;
        let out = iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .expect("list keys");
        out.access_key_metadata()
            .iter()
            .map(|k| k.access_key_id().unwrap().to_string())
            .collect()
    }

    /// Runs keyrot; no secret moto ever issued may appear in its output.
    fn keyrot(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--endpoint-url", self.moto.url.as_str()]);
        let out = self.moto.keyrot_with_env(&all, env);
        let printed = show(&out);
        for secret in self.moto.all_secrets() {
            assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
        }
        out
    }
}

/// A day `days` from now (by the clock keyrot is given), `YYYY-MM-DD`.
fn day_from_now(days: i64, clock_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = aws_smithy_types::DateTime::from_secs(now + clock_offset + days * DAY);
    date.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap()[..10]
        .to_string()
}

/// The organization most tests use, and what they need to know of it.
struct Fixture {
    org: Org,
    prod: Vec<String>,
    prod_eu: Vec<String>,
    dev: Vec<String>,
    sandbox: Vec<String>,
    legacy: String,
    closed: Vec<String>,
    ous: BTreeMap<&'static str, String>,
    /// (account, user) → its key before any run.
    keys: BTreeMap<(String, String), String>,
}

/// Keys look 45 days old to keyrot: older than the default rule's 30d,
/// younger than prod's 90d.
const AGE_45D: i64 = 45 * DAY;

impl Fixture {
    /// 24 accounts: prod (6) with prod-eu (4) nested in it, dev (5),
    /// sandbox (3), 2 at the root (one of them legacy), 3 closed, and the
    /// management account. Each has a CI user under /ci/ and a person at
    /// /; dev's first account has the odd cases.
    async fn build() -> Fixture {
        let org = Org::start().await;
        let root = org.root.clone();
        let prod_ou = org.ou(&root, "prod").await;
        let prod_eu_ou = org.ou(&prod_ou, "prod-eu").await;
        let dev_ou = org.ou(&root, "dev").await;
        let sandbox_ou = org.ou(&root, "sandbox").await;
        let accounts = |prefix: &'static str, parent: String, n: usize| {
            let org = &org;
            async move {
                let mut ids = Vec::new();
                for i in 0..n {
                    ids.push(org.account(&format!("{prefix}-{i}"), &parent).await);
                }
                ids
            }
        };
        let prod = accounts("prod", prod_ou.clone(), 6).await;
        let prod_eu = accounts("prod-eu", prod_eu_ou.clone(), 4).await;
        let dev = accounts("dev", dev_ou.clone(), 5).await;
        let sandbox = accounts("sandbox", sandbox_ou.clone(), 3).await;
        let at_root = accounts("shared", root.clone(), 1).await;
        let legacy = org.account("legacy", &root).await;
        let closed = accounts("closed", dev_ou.clone(), 3).await;
        let mut keys = BTreeMap::new();
        let everyone = prod
            .iter()
            .chain(&prod_eu)
            .chain(&dev)
            .chain(&sandbox)
            .chain(&at_root)
            .chain(&closed)
            .chain([&legacy])
            .chain([&MANAGEMENT.to_string()])
            .cloned()
            .collect::<Vec<_>>();
        for account in &everyone {
            let owner = format!("team-{}", &account[..4]);
            let ci = org
                .user(account, "deployer", "/ci/", &[("owner", &owner)])
                .await;
            keys.insert((account.clone(), "deployer".to_string()), ci);
            let person = org.user(account, "alice", "/", &[]).await;
            keys.insert((account.clone(), "alice".to_string()), person);
        }
        for account in &closed {
            org.close(account).await;
        }
        // The odd cases, in dev's first account.
        let odd = &dev[0];
        let later = day_from_now(100, AGE_45D);
        let past = day_from_now(-10, AGE_45D);
        let soon = day_from_now(5, AGE_45D);
        for (user, tag) in [
            ("vendor-sync", format!("vendor contract, until {later}")),
            ("old-exempt", format!("migration, until {past}")),
            ("ending-soon", format!("being replaced, until {soon}")),
            ("forever", "break-glass automation".to_string()),
        ] {
            let key = org
                .user(
                    odd,
                    user,
                    "/ci/",
                    &[("keyrot:exempt", &tag), ("owner", "team-odd")],
                )
                .await;
            keys.insert((odd.clone(), user.to_string()), key);
        }
        let iam = org.iam(odd).await;
        let key = org.user(odd, "admin-bot", "/ci/", &[]).await;
        keys.insert((odd.clone(), "admin-bot".to_string()), key);
        iam.create_group()
            .group_name("break-glass")
            .send()
            .await
            .unwrap();
        iam.add_user_to_group()
            .group_name("break-glass")
            .user_name("admin-bot")
            .send()
            .await
            .unwrap();
        let ous = BTreeMap::from([
            ("prod", prod_ou),
            ("prod-eu", prod_eu_ou),
            ("dev", dev_ou),
            ("sandbox", sandbox_ou),
        ]);
        let mut dev_all = dev.clone();
        dev_all.extend(at_root);
        Fixture {
            org,
            prod,
            prod_eu,
            dev: dev_all,
            sandbox,
            legacy,
            closed,
            ous,
            keys,
        }
    }

    /// The job file of a real-looking organization: prod (and prod-eu
    /// under it) keeps keys 90 days and drains, everything else 30 days.
    fn job(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("org.toml");
        let hello = plugin("hello");
        std::fs::write(
            &path,
            format!(
                r#"
plugin = "{hello}"
concurrency = 8

[org]
role-name = "{ROLE}"
owner-tag = "owner"
exempt-groups = ["break-glass"]
[[org.exempt]]
ou = "{sandbox}"
reason = "sandboxes hold no CI keys"
[[org.exempt]]
account = "{legacy}"
reason = "rotated by hand until the migration"

[[target]]
name = "prod"
ous = ["{prod}"]
path-prefix = "/ci/"
max-age = "90d"
warn-age = "14d"
retire = "drain"

[[target]]
name = "default"
path-prefix = "/ci/"
max-age = "30d"
"#,
                hello = hello.display(),
                sandbox = self.ous["sandbox"],
                legacy = self.legacy,
                prod = self.ous["prod"],
            ),
        )
        .unwrap();
        path
    }

    fn key(&self, account: &str, user: &str) -> &str {
        &self.keys[&(account.to_string(), user.to_string())]
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(out)))
}

/// (account, user) → the run's report of it.
fn runs(report: &Value) -> BTreeMap<(String, String), Value> {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["account"].as_str().unwrap_or("?").to_string(),
                    r["user"].as_str().unwrap().to_string(),
                ),
                r.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_organization_rotates_by_its_rules_and_reports_every_exemption() {
    let f = Fixture::build().await;
    let dir = tempfile::tempdir().unwrap();
    let job = f.job(dir.path());
    let offset = AGE_45D.to_string();
    let env = [("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())];
    let out = f
        .org
        .keyrot(&["--job", job.to_str().unwrap(), "--output", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let runs = runs(&report);

    // prod and prod-eu (nested): 90d rule, keys 45d old: skipped, untouched.
    for account in f.prod.iter().chain(&f.prod_eu) {
        let run = &runs[&(account.clone(), "deployer".into())];
        assert_eq!(run["outcome"], "skipped", "{run}");
        assert_eq!(run["target"], "target prod");
        let rule = run["rule"].as_str().unwrap();
        assert!(
            rule.contains("max age 90d") && rule.contains("path /ci/"),
            "{rule}"
        );
        assert_eq!(
            f.org.keys(account, "deployer").await,
            [f.key(account, "deployer")]
        );
    }
    // prod-eu's accounts are matched by the outer OU, and say which.
    let eu = &runs[&(f.prod_eu[0].clone(), "deployer".into())];
    assert!(
        eu["rule"].as_str().unwrap().contains(&f.ous["prod"]),
        "{eu}"
    );

    // Everything else under /ci/: the 30d rule, rotated, owner carried.
    for account in &f.dev {
        let run = &runs[&(account.clone(), "deployer".into())];
        assert_eq!(run["outcome"], "rotated", "{run}");
        assert_eq!(run["target"], "target default");
        assert_eq!(run["owner"], format!("team-{}", &account[..4]));
        let keys = f.org.keys(account, "deployer").await;
        assert_eq!(keys.len(), 1);
        assert_ne!(keys[0], f.key(account, "deployer"), "rotated");
        assert_eq!(run["new_key"]["access_key_id"], keys[0].as_str());
    }
    // The management account is entered as it is, and rotated by its rule.
    let home = &runs[&(MANAGEMENT.into(), "deployer".into())];
    assert_eq!(home["outcome"], "rotated", "{home}");

    // People at / match no target: not in the report, keys untouched.
    assert!(!runs.keys().any(|(_, user)| user == "alice"));
    assert_eq!(
        f.org.keys(&f.dev[1], "alice").await,
        [f.key(&f.dev[1], "alice")]
    );

    // Exempt accounts: one line each, with the reason; keys untouched.
    for account in &f.sandbox {
        let run = &runs[&(account.clone(), "*".into())];
        assert_eq!(run["outcome"], "exempt");
        assert_eq!(run["exempt"]["by"], format!("OU {}", f.ous["sandbox"]));
        assert_eq!(run["exempt"]["reason"], "sandboxes hold no CI keys");
        assert_eq!(
            f.org.keys(account, "deployer").await,
            [f.key(account, "deployer")]
        );
    }
    let legacy = &runs[&(f.legacy.clone(), "*".into())];
    assert_eq!(legacy["exempt"]["by"], format!("account {}", f.legacy));
    assert_eq!(legacy["account_name"], "legacy");

    // Closed accounts are skipped: not entered, not reported.
    for account in &f.closed {
        assert!(!runs.keys().any(|(a, _)| a == account), "{account}");
        assert_eq!(
            f.org.keys(account, "deployer").await,
            [f.key(account, "deployer")]
        );
    }

    // The odd users: exempt by tag (with its last day), by group, for good;
    // an expired exemption is ignored and said so; one ending soon warns.
    let odd = &f.dev[0];
    let user = |name: &str| runs[&(odd.clone(), name.to_string())].clone();
    let vendor = user("vendor-sync");
    assert_eq!(vendor["outcome"], "exempt");
    assert_eq!(vendor["exempt"]["by"], "tag keyrot:exempt");
    assert_eq!(vendor["exempt"]["reason"], "vendor contract");
    assert_eq!(vendor["exempt"]["until"], day_from_now(100, AGE_45D));
    assert_eq!(vendor["owner"], "team-odd");
    assert_eq!(
        user("forever")["exempt"]["reason"],
        "break-glass automation"
    );
    assert_eq!(user("admin-bot")["exempt"]["by"], "group break-glass");
    let soon = user("ending-soon");
    assert_eq!(soon["outcome"], "exempt");
    assert!(
        soon["warnings"][0].as_str().unwrap().contains("ends on"),
        "{soon}"
    );
    let expired = user("old-exempt");
    assert_eq!(expired["outcome"], "rotated", "{expired}");
    assert!(
        expired["warnings"][0]
            .as_str()
            .unwrap()
            .contains("ended on"),
        "{expired}"
    );
    for name in ["vendor-sync", "forever", "admin-bot", "ending-soon"] {
        assert_eq!(f.org.keys(odd, name).await, [f.key(odd, name)], "{name}");
    }
    assert_ne!(
        f.org.keys(odd, "old-exempt").await,
        [f.key(odd, "old-exempt")]
    );

    let summary = &report["summary"];
    assert_eq!(summary["exempt"], 3 + 1 + 4);
    assert_eq!(summary["skipped"], 10);
    assert_eq!(summary["failed"], 0);
}

#[tokio::test]
async fn keys_due_soon_are_warned_about_and_left_alone() {
    let f = Fixture::build().await;
    let dir = tempfile::tempdir().unwrap();
    let job = f.job(dir.path());
    // 80 days: prod's keys come due within its 14-day window.
    let offset = (80 * DAY).to_string();
    let out = f.org.keyrot(
        &[
            "--job",
            job.to_str().unwrap(),
            "--ou",
            &f.ous["prod"],
            "--output",
            "json",
        ],
        &[("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let runs = runs(&report);
    // --ou narrows the run to prod and everything under it.
    assert_eq!(runs.len(), f.prod.len() + f.prod_eu.len(), "{runs:?}");
    for account in f.prod.iter().chain(&f.prod_eu) {
        let run = &runs[&(account.clone(), "deployer".into())];
        assert_eq!(run["outcome"], "skipped");
        let warning = run["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains("comes due in") && warning.contains("max age 90d"),
            "{warning}"
        );
        assert!(run["skipped"]["due"].is_string());
        assert_eq!(
            f.org.keys(account, "deployer").await,
            [f.key(account, "deployer")]
        );
    }
    assert_eq!(report["summary"]["warned"], 10);
}

/// `keyrot status` over the organization: every state, in text, JSON and
/// CSV (read back by Python's csv module, a parser that is not ours).
#[tokio::test]
async fn status_shows_the_organization_in_text_json_and_csv() {
    let f = Fixture::build().await;
    let dir = tempfile::tempdir().unwrap();
    let job = f.job(dir.path());
    let offset = (80 * DAY).to_string();
    let env = [("KEYROT_TEST_CLOCK_OFFSET", offset.as_str())];
    let job = job.to_str().unwrap();
    let out = f
        .org
        .keyrot(&["status", "--job", job, "--output", "json"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let view = json(&out);
    let accounts: BTreeMap<String, Value> = view["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["account"].as_str().unwrap().to_string(), a.clone()))
        .collect();
    let state = |account: &str, user: &str| -> String {
        accounts[account]["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user"] == user)
            .unwrap_or_else(|| panic!("{user} in {account}"))["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state(&f.prod[0], "deployer"), "warn");
    assert_eq!(state(&f.dev[1], "deployer"), "due");
    assert_eq!(state(&f.dev[0], "vendor-sync"), "exempt");
    assert_eq!(state(&f.dev[0], "admin-bot"), "exempt");
    assert_eq!(accounts[&f.sandbox[0]]["state"], "exempt");
    let owner = &accounts[&f.dev[1]]["users"][0]["owner"];
    assert_eq!(owner, &format!("team-{}", &f.dev[1][..4]));
    let skipped: BTreeSet<&str> = view["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["account"].as_str().unwrap())
        .collect();
    for closed in &f.closed {
        assert!(skipped.contains(closed.as_str()), "{closed}");
    }
    // Status changes nothing.
    assert_eq!(
        f.org.keys(&f.dev[1], "deployer").await,
        [f.key(&f.dev[1], "deployer")]
    );

    let out = f.org.keyrot(&["status", "--job", job], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("team-odd"), "{text}");
    assert!(text.contains("exempt by tag keyrot:exempt"), "{text}");
    assert!(text.contains("sandboxes hold no CI keys"), "{text}");

    let out = f
        .org
        .keyrot(&["status", "--job", job, "--output", "csv"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let csv_path = dir.path().join("status.csv");
    std::fs::write(&csv_path, &out.stdout).unwrap();
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.DictReader(open(sys.argv[1], newline='')))))",
            csv_path.to_str().unwrap(),
        ])
        .output()
        .expect("python3 reads the CSV");
    assert!(parsed.status.success(), "{}", show(&parsed));
    let rows: Vec<BTreeMap<String, String>> = serde_json::from_slice(&parsed.stdout).unwrap();
    let row = rows
        .iter()
        .find(|r| r["account"] == f.dev[0] && r["user"] == "vendor-sync")
        .expect("a row for vendor-sync");
    assert_eq!(row["state"], "exempt");
    assert_eq!(row["exempt_reason"], "vendor contract");
    assert_eq!(row["key_id"], f.key(&f.dev[0], "vendor-sync"));
    assert_eq!(row["key_age_days"], "80");
    let sandbox_row = rows
        .iter()
        .find(|r| r["account"] == f.sandbox[0])
        .expect("a row for an exempt account");
    assert_eq!(sandbox_row["user"], "*");
    assert_eq!(sandbox_row["state"], "exempt");

    // The same look as metrics, read by prometheus_client's parser; an
    // account name is anyone's to choose, quotes and backslashes included.
    let odd_name = r#"ops "blue" \ team"#;
    let odd = f.org.account(odd_name, &f.org.root).await;
    let out = f
        .org
        .keyrot(&["status", "--job", job, "--output", "prometheus"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    crate::metrics::promtool_lint(&out.stdout);
    let m = crate::metrics::parse_prometheus(&out.stdout);
    let one = |family: &str, having: &[(&str, &str)]| {
        let found = crate::metrics::samples(&m, family, having);
        assert_eq!(found.len(), 1, "{family} {having:?}: {found:?}");
        (found[0].labels.clone(), found[0].value)
    };
    let (labels, _) = one("keyrot_account_state", &[("account", &odd)]);
    assert_eq!(labels["account_name"], odd_name);
    assert_eq!(labels["state"], "entered");
    let (labels, _) = one("keyrot_account_state", &[("account", &f.sandbox[0])]);
    assert_eq!(labels["state"], "exempt");
    let (labels, value) = one(
        "keyrot_user_state",
        &[("account", &f.dev[0]), ("user", "vendor-sync")],
    );
    assert_eq!((labels["state"].as_str(), value), ("exempt", 1.0));
    assert_eq!(labels["owner"], "team-odd");
    let (_, until) = one(
        "keyrot_exemption_expiry_timestamp_seconds",
        &[("account", &f.dev[0]), ("user", "vendor-sync")],
    );
    // The tag's last day, to its end (00:00 UTC the day after).
    let last_day = day_from_now(100, AGE_45D);
    let (y, mo, d) = (&last_day[..4], &last_day[5..7], &last_day[8..10]);
    let end = aws_smithy_types::DateTime::from_str(
        &format!("{y}-{mo}-{d}T00:00:00Z"),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .unwrap()
    .secs()
        + DAY;
    assert_eq!(until, end as f64);
    let (labels, _) = one(
        "keyrot_user_state",
        &[("account", &f.prod[0]), ("user", "deployer")],
    );
    assert_eq!(labels["state"], "warn");
    assert_eq!(labels["target"], "prod");
}

#[tokio::test]
async fn shards_cover_every_account_exactly_once() {
    let f = Fixture::build().await;
    let dir = tempfile::tempdir().unwrap();
    let job = f.job(dir.path());
    let job = job.to_str().unwrap();
    let mut seen: Vec<String> = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let out = f.org.keyrot(
            &[
                "--job",
                job,
                "--shard",
                &shard,
                "--dry-run",
                "--output",
                "json",
            ],
            &[("KEYROT_TEST_CLOCK_OFFSET", &AGE_45D.to_string())],
        );
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let accounts: BTreeSet<String> = runs(&json(&out))
            .keys()
            .map(|(account, _)| account.clone())
            .collect();
        seen.extend(accounts);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "an account in two shards: {seen:?}"
    );
    let active: BTreeSet<&String> = f
        .prod
        .iter()
        .chain(&f.prod_eu)
        .chain(&f.dev)
        .chain(&f.sandbox)
        .chain([&f.legacy])
        .collect();
    let mut expected = active;
    let management = MANAGEMENT.to_string();
    expected.insert(&management);
    assert_eq!(unique, expected);
    // A dry run changed nothing anywhere.
    assert_eq!(
        f.org.keys(&f.dev[1], "deployer").await,
        [f.key(&f.dev[1], "deployer")]
    );
}

#[tokio::test]
async fn an_unreadable_exemption_changes_nothing_and_says_what_to_fix() {
    let org = Org::start().await;
    let dev = org.account("dev", &org.root).await;
    let key = org
        .user(&dev, "ci", "/", &[("keyrot:exempt", "until 2027/03/01")])
        .await;
    let hello = plugin("hello").to_string_lossy().into_owned();
    let out = org.keyrot(
        &[
            "--plugin",
            &hello,
            "--org",
            "--org-role-name",
            ROLE,
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let report = json(&out);
    let run = &runs(&report)[&(dev.clone(), "ci".into())];
    assert_eq!(run["outcome"], "bad-input");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("is not a date") && error.contains("aws iam tag-user"),
        "{error}"
    );
    assert_eq!(org.keys(&dev, "ci").await, [key]);
}

#[tokio::test]
async fn bad_organization_input_fails_before_any_key_changes() {
    let org = Org::start().await;
    let dev = org.account("dev", &org.root).await;
    let key = org.user(&dev, "ci", "/", &[]).await;
    let hello = plugin("hello").to_string_lossy().into_owned();
    let run = |extra: &[&str]| {
        let mut args = vec!["--plugin", hello.as_str()];
        args.extend_from_slice(extra);
        org.keyrot(&args, &[])
    };
    for (args, says) in [
        (vec!["--org"], "--org-role-name"),
        (
            vec!["--org", "--org-role-name", "bad role"],
            "not an IAM role name",
        ),
        (
            vec!["--ou", "ou-nope", "--org-role-name", ROLE],
            "not an OU id",
        ),
        (
            vec!["--org", "--org-role-name", ROLE, "--shard", "3/3"],
            "not a shard",
        ),
        (vec!["--user", "ci", "--shard", "0/2"], "organization run"),
        (
            vec!["--org", "--org-role-name", ROLE, "--all-users"],
            "implied",
        ),
        (
            vec!["--org", "--org-role-name", ROLE, "--warn-within", "14d"],
            "--older-than",
        ),
        // An OU the organization does not have: found when it is listed.
        (
            vec!["--ou", "ou-abcd-12345678", "--org-role-name", ROLE],
            "not in this organization",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(org.keys(&dev, "ci").await, [key.as_str()], "{args:?}");
    }
}

/// A policy document of examples/org/, as moto can check it: moto checks
/// IAM user and group calls against the resource `*`, not their ARNs (see
/// tests/examples.rs), so those statements get `*`; Organizations and STS
/// statements stay as shipped (moto checks `sts:AssumeRole` against the
/// role's ARN).
fn example_policy(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/org")
        .join(name);
    let mut policy: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for statement in policy["Statement"].as_array_mut().unwrap() {
        let iam = match &statement["Action"] {
            Value::String(a) => a.starts_with("iam:"),
            Value::Array(all) => all.iter().all(|a| a.as_str().unwrap().starts_with("iam:")),
            _ => false,
        };
        if iam {
            statement["Resource"] = Value::from("*");
        }
    }
    policy
}

/// An organization with IAM auth on: the management account's `security`
/// user (at `/`) holds `policy`; each of `accounts` member accounts has
/// role `role` with `member_policy`, but account `missing`, which has no
/// role, and a `deployer` user under /ci/. Returns the organization, the
/// accounts, the deployers' keys and `security`'s key.
async fn with_auth(
    policy: &Value,
    role: &str,
    member_policy: &Value,
    accounts: usize,
    missing: Option<usize>,
) -> (Org, Vec<String>, Vec<String>, (String, String)) {
    let org = Org::start().await;
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    for i in 0..accounts {
        let id = org.account(&format!("member-{i}"), &org.root).await;
        if Some(i) != missing {
            let iam = org.iam(&id).await;
            iam.create_role()
                .role_name(role)
                .assume_role_policy_document(
                    serde_json::json!({
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Effect": "Allow",
                            "Principal": { "AWS": format!("arn:aws:iam::{MANAGEMENT}:root") },
                            "Action": "sts:AssumeRole",
                        }],
                    })
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            iam.put_role_policy()
                .role_name(role)
                .policy_name("keyrot")
                .policy_document(member_policy.to_string())
                .send()
                .await
                .unwrap();
        }
        keys.push(org.user(&id, "deployer", "/ci/", &[]).await);
        ids.push(id);
    }
    let iam = &org.moto.client;
    iam.create_user()
        .user_name("security")
        .send()
        .await
        .unwrap();
    put_security_policy(&org, policy).await;
    let key = iam
        .create_access_key()
        .user_name("security")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let key = (
        key.access_key_id().to_string(),
        key.secret_access_key().to_string(),
    );
    org.moto.enforce_auth();
    (org, ids, keys, key)
}

async fn put_security_policy(org: &Org, policy: &Value) {
    org.moto
        .client
        .put_user_policy()
        .user_name("security")
        .policy_name("keyrot")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
}

fn as_security(key: &(String, String)) -> [(&str, &str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", key.0.as_str()),
        ("AWS_SECRET_ACCESS_KEY", key.1.as_str()),
    ]
}

/// Each account's users and their key ids, from `status --output json`.
fn keys_in(view: &Value) -> BTreeMap<(String, String), Vec<String>> {
    let mut keys = BTreeMap::new();
    for account in view["accounts"].as_array().unwrap() {
        for user in account["users"].as_array().unwrap() {
            let ids = user["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["access_key_id"].as_str().unwrap().to_string())
                .collect();
            keys.insert(
                (
                    account["account"].as_str().unwrap().to_string(),
                    user["user"].as_str().unwrap().to_string(),
                ),
                ids,
            );
        }
    }
    keys
}

#[tokio::test]
async fn the_example_policies_suffice_for_a_rotation_and_for_status() {
    let management = example_policy("management-policy.json");
    let member = example_policy("member-role-policy.json");
    let (org, accounts, before, key) = with_auth(&management, ROLE, &member, 3, None).await;
    let hello = plugin("hello").to_string_lossy().into_owned();
    let env = as_security(&key);
    let out = org.keyrot(
        &[
            "--plugin",
            &hello,
            "--org",
            "--org-role-name",
            ROLE,
            "--owner-tag",
            "owner",
            "--exempt-group",
            "break-glass",
            "--output",
            "json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = json(&out);
    let runs = runs(&report);
    for account in &accounts {
        let run = &runs[&(account.clone(), "deployer".into())];
        assert_eq!(run["outcome"], "rotated", "{run}");
    }
    // keyrot's own user in the account it runs in is left alone, and why.
    let myself = &runs[&(MANAGEMENT.into(), "security".into())];
    assert_eq!(myself["outcome"], "exempt", "{myself}");
    assert_eq!(myself["exempt"]["by"], "self");
    // status, with the same policies, sees the new keys.
    let out = org.keyrot(
        &[
            "status",
            "--org",
            "--org-role-name",
            ROLE,
            "--output",
            "json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let now = keys_in(&json(&out));
    for (account, old) in accounts.iter().zip(&before) {
        let keys = &now[&(account.clone(), "deployer".into())];
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_ne!(&keys[0], old, "rotated");
        assert_eq!(
            runs[&(account.clone(), "deployer".into())]["new_key"]["access_key_id"],
            keys[0].as_str()
        );
    }
}

#[tokio::test]
async fn status_needs_only_the_read_only_policies() {
    let management = example_policy("management-status-policy.json");
    let member = example_policy("member-status-policy.json");
    let (org, accounts, before, key) =
        with_auth(&management, "keyrot-status", &member, 2, None).await;
    let env = as_security(&key);
    let out = org.keyrot(
        &[
            "status",
            "--org",
            "--org-role-name",
            "keyrot-status",
            "--older-than",
            "30d",
            "--output",
            "json",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let view = json(&out);
    let keys = keys_in(&view);
    for (account, old) in accounts.iter().zip(&before) {
        assert_eq!(keys[&(account.clone(), "deployer".into())], [old.as_str()]);
        let found = view["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == account.as_str())
            .unwrap();
        assert_eq!(found["users"][0]["state"], "ok", "{found}");
    }
    // The read-only role cannot rotate: each account fails, none changes.
    let hello = plugin("hello").to_string_lossy().into_owned();
    let out = org.keyrot(
        &[
            "--plugin",
            &hello,
            "--org",
            "--org-role-name",
            "keyrot-status",
            "--path-prefix",
            "/ci/",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let out = org.keyrot(
        &[
            "status",
            "--org",
            "--org-role-name",
            "keyrot-status",
            "--output",
            "json",
        ],
        &env,
    );
    let after = keys_in(&json(&out));
    for (account, old) in accounts.iter().zip(&before) {
        assert_eq!(after[&(account.clone(), "deployer".into())], [old.as_str()]);
    }
}

#[tokio::test]
async fn listing_denied_says_exactly_what_to_grant_and_changes_nothing() {
    let mut policy = example_policy("management-policy.json");
    policy["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "Effect": "Deny",
            "Action": "organizations:ListAccounts",
            "Resource": "*",
        }));
    let member = example_policy("member-role-policy.json");
    let (org, _accounts, _keys, key) = with_auth(&policy, ROLE, &member, 1, None).await;
    let hello = plugin("hello").to_string_lossy().into_owned();
    let out = org.keyrot(
        &["--plugin", &hello, "--org", "--org-role-name", ROLE],
        &as_security(&key),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for says in [
        "organizations:ListAccounts",
        "AccessDenied",
        "management account",
        "delegated administrator",
        "examples/org/management-policy.json",
        "nothing was changed",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
    assert!(out.stdout.is_empty(), "no report: nothing ran");
}

#[tokio::test]
async fn an_account_that_cannot_be_entered_fails_alone() {
    let mut policy = example_policy("management-policy.json");
    let member = example_policy("member-role-policy.json");
    // Account 2 has no role at all.
    let (org, accounts, _keys, key) = with_auth(&policy, ROLE, &member, 3, Some(2)).await;
    // Account 1's role may not be assumed: an explicit deny, as a missing
    // trust or a service control policy answers in AWS.
    policy["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "Effect": "Deny",
            "Action": "sts:AssumeRole",
            "Resource": format!("arn:aws:iam::{}:role/{ROLE}", accounts[1]),
        }));
    org.moto.relax_auth();
    put_security_policy(&org, &policy).await;
    org.moto.enforce_auth();
    let hello = plugin("hello").to_string_lossy().into_owned();
    let out = org.keyrot(
        &[
            "--plugin",
            &hello,
            "--org",
            "--org-role-name",
            ROLE,
            "--path-prefix",
            "/ci/",
            "--output",
            "json",
        ],
        &as_security(&key),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json(&out);
    let runs = runs(&report);
    assert_eq!(
        runs[&(accounts[0].clone(), "deployer".into())]["outcome"],
        "rotated"
    );
    let denied = &runs[&(accounts[1].clone(), "/*".into())];
    assert_eq!(denied["outcome"], "failed");
    let why = denied["error"].as_str().unwrap();
    assert!(
        why.contains("cannot assume role") && why.contains("AccessDenied"),
        "{why}"
    );
    assert!(why.contains("nothing was changed in this account"), "{why}");
    let missing = &runs[&(accounts[2].clone(), "/*".into())];
    assert_eq!(missing["outcome"], "failed", "{missing}");
    let why = missing["error"].as_str().unwrap();
    assert!(why.contains("nothing was changed in this account"), "{why}");
}

/// examples/org/org-rotation.toml with its placeholders replaced by this
/// organization's ids, and the handler by the hello plugin.
fn example_job(f: &Fixture, dir: &std::path::Path) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("examples/org/org-rotation.toml")).unwrap();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("plugin-keys") {
            continue;
        }
        if line.starts_with("plugin =") {
            lines.push(format!("plugin = \"{}\"", plugin("hello").display()));
            continue;
        }
        lines.push(
            line.replace("ou-a1b2-sandbox0", &f.ous["sandbox"])
                .replace("ou-a1b2-prod0000", &f.ous["prod"])
                .replace("444455556666", &f.legacy),
        );
    }
    assert!(text.contains(&format!("role-name = \"{ROLE}\"")));
    let path = dir.join("org-rotation.toml");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// The Indexed Job example's pods, each with its index expanded as
/// Kubernetes expands it, run at once against the organization of the
/// example job file: together they rotate every due user once.
#[tokio::test]
async fn the_indexed_job_example_covers_the_organization_once() {
    let f = Fixture::build().await;
    let dir = tempfile::tempdir().unwrap();
    let job = example_job(&f, dir.path());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs =
        crate::kubernetes::yaml_documents(&root.join("examples/kubernetes/org-indexed-job.yaml"));
    let cron = docs
        .iter()
        .find(|d| d["kind"] == "CronJob")
        .expect("a CronJob");
    let spec = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(n), "every shard runs");
    let container = &spec["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let shard = args.iter().position(|a| a == "--shard").expect("--shard");
    assert_eq!(args[shard + 1], format!("$(JOB_COMPLETION_INDEX)/{n}"));
    let job_arg = args.iter().position(|a| a == "--job").expect("--job");
    let mut pods = Vec::new();
    let mut homes = Vec::new();
    for index in 0..n {
        let mut args: Vec<String> = args
            .iter()
            .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", &index.to_string()))
            .collect();
        args[job_arg + 1] = job.display().to_string();
        args.extend(["--endpoint-url".into(), f.org.moto.url.clone()]);
        let state = dir.path().join(format!("state-{index}"));
        let mut env: Vec<(String, String)> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (name, value) in &mut env {
            if name == "KEYROT_STATE_DIR" {
                *value = state.display().to_string();
            }
        }
        env.push(("KEYROT_TEST_CLOCK_OFFSET".into(), AGE_45D.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (mut cmd, home) = f.org.moto.command(&args, &env);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        pods.push(cmd.spawn().expect("start a pod's keyrot"));
        homes.push(home);
    }
    let mut covered = Vec::new();
    for pod in pods {
        let out = pod.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let printed = show(&out);
        for secret in f.org.moto.all_secrets() {
            assert!(!printed.contains(&secret), "a secret leaked:\n{printed}");
        }
        let accounts: BTreeSet<String> = runs(&json(&out)).into_keys().map(|(a, _)| a).collect();
        covered.extend(accounts);
    }
    let once: BTreeSet<&String> = covered.iter().collect();
    assert_eq!(
        once.len(),
        covered.len(),
        "an account in two pods: {covered:?}"
    );
    let management = MANAGEMENT.to_string();
    let expected: BTreeSet<&String> = f
        .prod
        .iter()
        .chain(&f.prod_eu)
        .chain(&f.dev)
        .chain(&f.sandbox)
        .chain([&f.legacy, &management])
        .collect();
    assert_eq!(once, expected);
    for account in &f.dev {
        let keys = f.org.keys(account, "deployer").await;
        assert_eq!(keys.len(), 1, "{account}: {keys:?}");
        assert_ne!(keys[0], f.key(account, "deployer"), "{account} rotated");
    }
    for account in &f.prod {
        assert_eq!(
            f.org.keys(account, "deployer").await,
            [f.key(account, "deployer")]
        );
    }
}

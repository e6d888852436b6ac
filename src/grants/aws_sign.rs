//! AWS requests the host signs for the plugin (SigV4), so a handler that
//! writes to an AWS service never holds the credentials:
//!
//! - `--aws-sign HOST` for an AWS endpoint (`secretsmanager.eu-west-1.amazonaws.com`:
//!   service and region read from the name), or `--aws-sign HOST=SERVICE/REGION`
//!   for any other (a VPC endpoint, a local emulator);
//! - the identity that signs, named once: `--aws-sign-role-arn ARN` (assumed
//!   with keyrot's own credentials) or `--aws-sign-profile NAME`. Never the
//!   key being rotated: that one is deleted at the end of the run.
//!
//! The host signs only requests to those hosts, after the allow-list check;
//! a request anywhere else goes out unsigned.

use super::{AllowList, HostRule};

/// One host whose requests the host signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSigning {
    /// The host it applies to (and only it).
    pub host: HostRule,
    /// The host as the operator wrote it.
    pub written: String,
    /// The SigV4 service name, e.g. `secretsmanager`.
    pub service: String,
    /// The region, e.g. `eu-west-1`.
    pub region: String,
}

impl AwsSigning {
    /// Parses `HOST` (an AWS endpoint name) or `HOST=SERVICE/REGION`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "bad --aws-sign '{spec}': {why} (expected e.g. \
                 secretsmanager.eu-west-1.amazonaws.com, or \
                 http://127.0.0.1:5000=secretsmanager/us-east-1)"
            )
        };
        let (written, named) = match spec.split_once('=') {
            Some((host, named)) => (host.trim(), Some(named.trim())),
            None => (spec.trim(), None),
        };
        let host: HostRule = written.parse()?;
        let (service, region) = match named {
            Some(named) => {
                let (service, region) = named
                    .split_once('/')
                    .ok_or_else(|| bad("SERVICE/REGION needs a '/'".into()))?;
                (service.to_string(), region.to_string())
            }
            None => of_endpoint(&host.host).ok_or_else(|| {
                bad(format!(
                    "'{}' is not an AWS endpoint name (SERVICE.REGION.amazonaws.com): \
                     name its service and region with ={{SERVICE}}/{{REGION}}",
                    host.host
                ))
            })?,
        };
        let word = |w: &str| {
            !w.is_empty()
                && w.len() <= 64
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !word(&service) || !word(&region) {
            return Err(bad(format!(
                "service '{service}' and region '{region}' must be lowercase letters, digits \
                 and '-'"
            )));
        }
        Ok(AwsSigning {
            host,
            written: written.to_string(),
            service,
            region,
        })
    }

    /// Ties the rule to the allowed host it means, as an injected header
    /// is (see [`HostRule::bind`]): signed requests are allowed ones.
    pub fn bind(&mut self, allowed: &AllowList) -> Result<(), String> {
        self.host = self
            .host
            .bind(&self.written, allowed, "requests are signed")?;
        Ok(())
    }
}

/// `secretsmanager.eu-west-1.amazonaws.com` → (`secretsmanager`,
/// `eu-west-1`); FIPS and dual-stack names too (`ssm-fips.us-east-1...`,
/// `...api.aws`).
fn of_endpoint(host: &str) -> Option<(String, String)> {
    let rest = ["amazonaws.com", "amazonaws.com.cn", "api.aws"]
        .iter()
        .find_map(|suffix| host.strip_suffix(suffix)?.strip_suffix('.'))?;
    let labels: Vec<&str> = rest.split('.').collect();
    let (service, region) = match labels.as_slice() {
        [service, region] => (*service, *region),
        // service.dualstack.region (older dual-stack names)
        [service, "dualstack", region] => (*service, *region),
        _ => return None,
    };
    let service = service.strip_suffix("-fips").unwrap_or(service);
    // A region has a digit (us-east-1); `s3.amazonaws.com` has none.
    region
        .bytes()
        .any(|b| b.is_ascii_digit())
        .then(|| (service.to_string(), region.to_string()))
}

/// Who signs: a role keyrot assumes, or a profile. Named once per target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigningIdentity {
    /// `--aws-sign-role-arn`.
    pub role_arn: Option<String>,
    /// `--aws-sign-external-id`, with the role.
    pub external_id: Option<String>,
    /// `--aws-sign-profile`.
    pub profile: Option<String>,
}

impl SigningIdentity {
    /// Whether any identity is named.
    pub fn is_named(&self) -> bool {
        self.role_arn.is_some() || self.profile.is_some()
    }

    /// Checks the identity is whole: exactly one of role and profile, and
    /// an external id only with a role.
    pub fn check(&self) -> Result<(), String> {
        match (&self.role_arn, &self.profile) {
            (Some(_), Some(_)) => Err(
                "--aws-sign-role-arn and --aws-sign-profile both name who signs: give one".into(),
            ),
            (None, _) if self.external_id.is_some() => {
                Err("--aws-sign-external-id goes with --aws-sign-role-arn".into())
            }
            _ => Ok(()),
        }
    }

    /// In words, for inspect and reports: `role arn:...` or `profile NAME`.
    pub fn describe(&self) -> String {
        match (&self.role_arn, &self.profile) {
            (Some(arn), _) => format!("role {arn}"),
            (None, Some(profile)) => format!("profile {profile}"),
            (None, None) => "nobody".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_endpoints_name_their_service_and_region() {
        let s = AwsSigning::parse("secretsmanager.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(
            (s.service.as_str(), s.region.as_str()),
            ("secretsmanager", "eu-west-1")
        );
        assert_eq!(s.host.to_string(), "secretsmanager.eu-west-1.amazonaws.com");
        let s = AwsSigning::parse("ssm-fips.us-gov-west-1.amazonaws.com").unwrap();
        assert_eq!(
            (s.service.as_str(), s.region.as_str()),
            ("ssm", "us-gov-west-1")
        );
        let s = AwsSigning::parse("secretsmanager.cn-north-1.amazonaws.com.cn").unwrap();
        assert_eq!(s.region, "cn-north-1");
        let s = AwsSigning::parse("http://127.0.0.1:5000=secretsmanager/us-east-1").unwrap();
        assert_eq!(s.host.to_string(), "http://127.0.0.1:5000");
        assert_eq!(s.service, "secretsmanager");
    }

    #[test]
    fn other_hosts_must_say_what_they_are() {
        for spec in [
            "vault.example.com",
            "s3.amazonaws.com",
            "evil.amazonaws.com.example.com",
            "http://127.0.0.1:5000=secretsmanager",
            "http://127.0.0.1:5000=Secrets/us-east-1",
            "http://127.0.0.1:5000=/us-east-1",
        ] {
            assert!(AwsSigning::parse(spec).is_err(), "{spec}");
        }
    }

    #[test]
    fn an_identity_is_a_role_or_a_profile() {
        let role = SigningIdentity {
            role_arn: Some("arn:aws:iam::111122223333:role/writer".into()),
            ..Default::default()
        };
        assert!(role.check().is_ok());
        assert_eq!(
            role.describe(),
            "role arn:aws:iam::111122223333:role/writer"
        );
        let both = SigningIdentity {
            profile: Some("p".into()),
            ..role.clone()
        };
        assert!(both.check().is_err());
        let stray = SigningIdentity {
            external_id: Some("x".into()),
            profile: Some("p".into()),
            ..Default::default()
        };
        assert!(stray.check().is_err());
    }
}

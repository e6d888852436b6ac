//! Headers the host adds to requests to one host, so the plugin never sees
//! the token they carry.

use zeroize::Zeroizing;

use super::{AllowList, HostRule, SecretSource};

/// A header the host adds to every request to one host.
#[derive(Clone, Debug)]
pub struct HeaderInjection {
    /// The host it applies to (and only it).
    pub host: HostRule,
    /// The host as the operator wrote it, e.g. `127.0.0.1:8080` (see
    /// [`HeaderInjection::bind`]).
    pub written: String,
    /// The header name.
    pub name: String,
    /// The value, with the secret placeholder resolved. Never logged.
    pub value: Zeroizing<String>,
    /// The resolved secret alone, for redaction.
    pub secret: Zeroizing<String>,
}

impl HeaderInjection {
    /// Parses `HOST=HEADER:TEMPLATE`, where the template holds exactly one
    /// `{env:VAR}` or `{file:PATH}` placeholder (so the secret itself never
    /// appears on a command line), and resolves the placeholder.
    pub fn parse(spec: &str) -> Result<Self, String> {
        Self::parse_as(spec, "--inject-header")
    }

    /// [`HeaderInjection::parse`], naming the value `what` in errors (a
    /// flag, or a job file's key).
    pub fn parse_as(spec: &str, what: &str) -> Result<Self, String> {
        // Name the host at most, never the value: it may hold a secret
        // someone typed in by mistake.
        let host_part = spec.split_once('=').map_or("", |(h, _)| h.trim());
        let bad = |why: &str| {
            format!(
                "bad {what} for '{host_part}': {why} (expected e.g. \
                 'api.github.com=Authorization:Bearer {{env:GITHUB_TOKEN}}')"
            )
        };
        let (host, header) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (name, template) = header.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let host: HostRule = host.trim().parse()?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(bad("bad header name"));
        }
        let start = template
            .find('{')
            .ok_or_else(|| bad("the value needs an {env:VAR} or {file:PATH} placeholder"))?;
        let end = start
            + template[start..]
                .find('}')
                .ok_or_else(|| bad("unclosed '{'"))?;
        let source: SecretSource = template[start + 1..end].parse()?;
        if template[end + 1..].contains('{') {
            return Err(bad("only one placeholder is allowed"));
        }
        let secret = source
            .resolve()
            .map_err(|why| format!("{what} for '{host_part}': {why}"))?;
        let value = Zeroizing::new(format!(
            "{}{}{}",
            template[..start].trim_start(),
            secret.as_str(),
            &template[end + 1..]
        ));
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(bad("the value has characters a header cannot carry"));
        }
        Ok(HeaderInjection {
            host,
            written: host_part.to_string(),
            name: name.to_string(),
            value,
            secret,
        })
    }
}

impl HeaderInjection {
    /// Ties the header to the allowed host it means (see [`HostRule::bind`]).
    pub fn bind(&mut self, allowed: &AllowList) -> Result<(), String> {
        self.host = self.host.bind(
            &self.written,
            allowed,
            "headers are injected only into requests to allowed hosts",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> HostRule {
        s.parse().unwrap()
    }

    #[test]
    fn header_injection_resolves_its_placeholder() {
        let path = std::env::temp_dir().join(format!("keyrot-header-{}", std::process::id()));
        std::fs::write(&path, "tok\n").unwrap();
        let spec = format!(
            "api.github.com=Authorization:Bearer {{file:{}}}",
            path.display()
        );
        let h = HeaderInjection::parse(&spec).unwrap();
        assert_eq!(h.host, rule("api.github.com"));
        assert_eq!(
            (h.name.as_str(), h.value.as_str()),
            ("Authorization", "Bearer tok")
        );
        std::fs::remove_file(&path).unwrap();

        assert!(HeaderInjection::parse("api.github.com=Authorization:Bearer literal").is_err());
        assert!(HeaderInjection::parse("api.github.com=Bad Header:{env:X}").is_err());
        assert!(HeaderInjection::parse("*.github.com=Authorization:{env:X}").is_err());
    }

    fn injection(host: &str) -> HeaderInjection {
        // PATH is set wherever tests run; its value stands in for a secret.
        HeaderInjection::parse(&format!("{host}=X-Test:{{env:PATH}}")).unwrap()
    }

    #[test]
    fn a_header_host_without_scheme_binds_to_the_allowed_rule() {
        let plain = AllowList::new([rule("http://127.0.0.1:8080")]);
        let mut h = injection("127.0.0.1:8080");
        h.bind(&plain).unwrap();
        assert_eq!(h.host, rule("http://127.0.0.1:8080"));
        let mut h = injection("127.0.0.1");
        h.bind(&plain).unwrap();
        assert_eq!(h.host, rule("http://127.0.0.1:8080"));
        let mut h = injection("http://127.0.0.1:8080");
        h.bind(&plain).unwrap();

        let https = AllowList::new([rule("api.github.com")]);
        let mut h = injection("api.github.com");
        h.bind(&https).unwrap();
        assert_eq!(h.host, rule("api.github.com"));
    }

    #[test]
    fn a_header_for_a_host_not_allowed_gets_advice_that_works() {
        let err = injection("127.0.0.1:8080")
            .bind(&AllowList::default())
            .unwrap_err();
        assert!(
            err.contains("--allow-host 127.0.0.1:8080 (https)")
                && err.contains("--allow-host http://127.0.0.1:8080 for plain HTTP"),
            "{err}"
        );
        let plain = AllowList::new([rule("http://127.0.0.1:8080")]);
        let err = injection("https://127.0.0.1:8080")
            .bind(&plain)
            .unwrap_err();
        assert!(
            err.contains("add --allow-host 127.0.0.1:8080")
                && err.contains("allowed for that host: http://127.0.0.1:8080"),
            "{err}"
        );
        let both = AllowList::new([rule("http://127.0.0.1:8080"), rule("127.0.0.1:8080")]);
        let err = injection("127.0.0.1:8080").bind(&both).unwrap_err();
        assert!(err.contains("could mean any of"), "{err}");
        let mut h = injection("http://127.0.0.1:8080");
        h.bind(&both).unwrap();
    }
}

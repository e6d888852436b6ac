//! Throwaway certificate authorities for the tests' HTTPS servers, made
//! with the `openssl` CLI at test time: a CA, and a server certificate it
//! signed for 127.0.0.1 and localhost. Shared by the hostile registry and
//! the private-CA Kubernetes API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A CA, its files, and a TLS server configuration with its certificate.
pub struct TestCa {
    /// Holds `ca.pem` (the CA certificate), `server.pem` and `server.key`.
    pub dir: PathBuf,
    /// Serves the server certificate (and key) the CA signed.
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// Makes a CA named `name` (its common name says so) and a server
    /// certificate for 127.0.0.1 and localhost signed by it, in a fresh
    /// directory under the target's temporary directory.
    pub fn new(name: &str) -> TestCa {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("keyrot-test-ca-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\n[dn]\n[v3_ca]\n\
             basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let config = ["-config", "ca.cnf"];
        let ca = ["-x509", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"];
        let common_name = format!("/CN=keyrot test CA {name}");
        let subject = ["-subj", common_name.as_str()];
        openssl(&dir, &[&["req"][..], &config, &key, &ca, &subject].concat());
        let csr = [
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ];
        openssl(&dir, &[&["req"][..], &config, &key, &csr].concat());
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(dir.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        TestCa {
            dir,
            server: Arc::new(server),
        }
    }

    /// The CA certificate, PEM: what a client trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("the HTTPS tests need the openssl CLI ({e}): apt-get install openssl")
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

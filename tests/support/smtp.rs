//! A real SMTP server for the alert tests: `tests/smtp/server.py` on Debian's
//! python3-aiosmtpd, with STARTTLS (a throwaway certificate) and a login. It can be killed
//! and started again on the same port, to make an outage.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::api::free_port;

const PYTHON: &str = "/usr/bin/python3";
pub const USER: &str = "rapport";
pub const PASSWORD: &str = "alert-test-password";

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts the server, or prints `SKIP: …` and returns `None` where aiosmtpd or openssl
    /// is missing (CI installs them with scripts/install-deps, so there it fails instead).
    pub fn start(test: &str) -> Option<SmtpServer> {
        let missing = if !has_aiosmtpd() {
            Some("Debian's python3-aiosmtpd is not installed")
        } else if Command::new("openssl").arg("version").output().is_err() {
            Some("the openssl CLI is not installed")
        } else {
            None
        };
        if let Some(why) = missing {
            assert!(
                std::env::var_os("CI").is_none(),
                "{why}: CI must run scripts/install-deps"
            );
            eprintln!("SKIP: {test}: {why} (run scripts/install-deps)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rapport-smtp-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // A leaf, as rustls wants a server certificate (see `smtp.ca_file`).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "openssl could not make a test certificate");
        std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
        let mut server = SmtpServer {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// The CA certificate clients must trust (the server's own, self-signed).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// Kills it at once, as a crash or a network outage would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts it on the same port, keeping the mail received so far; waits until it
    /// listens.
    pub fn restart(&mut self) {
        self.kill();
        let root = self.dir.path();
        let mut child = Command::new(PYTHON)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(root.join("mail"))
            .arg("--cert")
            .arg(root.join("cert.pem"))
            .arg("--key")
            .arg(root.join("key.pem"))
            .args(["--user", USER, "--password", PASSWORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the test SMTP server did not start");
        self.child = Some(child);
    }

    /// The messages received so far, oldest first, as raw RFC 5322 bytes (with the envelope
    /// recipients as a first `X-Envelope-To` header).
    pub fn received(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .filter_map(|e| {
                let path = e.unwrap().path();
                let n = path.file_stem()?.to_str()?.parse().ok()?;
                (path.extension()? == "eml").then_some((n, path))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| std::fs::read(path).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn has_aiosmtpd() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

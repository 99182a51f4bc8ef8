//! A throwaway Dovecot IMAP server (Debian package `dovecot-imapd`) for one test: plain and
//! STARTTLS on one loopback port, implicit TLS on another, a self-signed certificate made
//! with the openssl CLI, one user with a plain password, and a Maildir under a temporary
//! directory that tests deliver into by writing files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rapport_config::{ImapMode, ImapSecurity, ImapSpec, Secret};

use super::{find_binary, free_port, terminate, wait_for_port};

pub const USER: &str = "kundeservice";
pub const PASSWORD: &str = "Rødgrød-med-fløde-42";

pub struct Dovecot {
    binary: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Plain IMAP, also offering STARTTLS.
    pub imap_port: u16,
    /// Implicit TLS.
    pub imaps_port: u16,
    maildir: PathBuf,
    owner: (u32, u32),
    delivered: AtomicU64,
}

impl Dovecot {
    /// Starts Dovecot, or prints `SKIP: …` and returns `None` when it is not installed
    /// (or the openssl CLI is missing). Panics when it is installed but does not start.
    pub fn start(test: &str) -> Option<Dovecot> {
        let Some(binary) = find_binary("dovecot", &["/usr/sbin/dovecot"]) else {
            eprintln!("SKIP: {test}: /usr/sbin/dovecot not found (install dovecot-imapd)");
            return None;
        };
        let Some(openssl) = find_binary("openssl", &["/usr/bin/openssl"]) else {
            eprintln!("SKIP: {test}: the openssl CLI is not installed (install openssl)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("rapport-dovecot-")
            .tempdir()
            .expect("temporary directory");
        let root = dir.path().to_path_buf();
        // Dovecot's unprivileged processes must reach the Maildir and certificate.
        set_mode(&root, 0o755);

        let status = Command::new(openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(root.join("key.pem"))
            .arg("-out")
            .arg(root.join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(
            status.success(),
            "openssl could not make a test certificate"
        );

        // As root, Dovecot drops privileges to existing users; otherwise it runs as us.
        let root_user = unsafe { libc::geteuid() } == 0;
        let (internal_user, login_user, owner) = if root_user {
            let mail_user = ["dovecot", "nobody"]
                .into_iter()
                .find_map(|name| lookup_user(name).map(|ids| (name, ids)))
                .expect("neither the dovecot nor the nobody user exists");
            let login = if lookup_user("dovenull").is_some() {
                "dovenull"
            } else {
                mail_user.0
            };
            (mail_user.0.to_string(), login.to_string(), mail_user.1)
        } else {
            let uid = unsafe { libc::geteuid() };
            let name = user_name(uid).expect("the current user is in /etc/passwd");
            let ids = lookup_user(&name).expect("current user");
            (name.clone(), name, ids)
        };

        let home = root.join("mail").join(USER);
        let maildir = home.join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("create Maildir");
        }
        for path in [root.join("mail"), home.clone(), maildir.clone()]
            .into_iter()
            .chain(["cur", "new", "tmp"].map(|s| maildir.join(s)))
        {
            chown(&path, owner);
        }

        std::fs::write(
            root.join("passwd"),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}:{}:{}::{}::\n",
                owner.0,
                owner.1,
                home.display()
            ),
        )
        .expect("write passwd file");

        let imap_port = free_port();
        let mut imaps_port = free_port();
        while imaps_port == imap_port {
            imaps_port = free_port();
        }
        // Not root: every Dovecot process runs as us, and sockets get our group.
        let internal_group = if root_user {
            String::new()
        } else {
            let group = group_name(owner.1).expect("the current group is in /etc/group");
            format!("default_internal_group = {group}\n")
        };
        // No chroot for the login processes (needs root, and buys nothing here); no
        // authentication penalty (it delays each failed login from 127.0.0.1 by seconds).
        let mut conf = String::new();
        let r = root.display();
        writeln!(
            conf,
            "protocols = imap\n\
             listen = 127.0.0.1\n\
             base_dir = {r}/run\n\
             state_dir = {r}/state\n\
             log_path = {r}/dovecot.log\n\
             info_log_path = {r}/dovecot.log\n\
             default_internal_user = {internal_user}\n\
             default_login_user = {login_user}\n\
             {internal_group}\
             first_valid_uid = 1\n\
             first_valid_gid = 1\n\
             auth_mechanisms = plain login\n\
             disable_plaintext_auth = no\n\
             auth_failure_delay = 0\n\
             ssl = yes\n\
             ssl_cert = <{r}/cert.pem\n\
             ssl_key = <{r}/key.pem\n\
             mail_location = maildir:~/Maildir\n\
             mail_fsync = never\n\
             mailbox_idle_check_interval = 1 secs\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {r}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             service anvil {{\n  chroot =\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n\
             service imap-login {{\n  chroot =\n\
             \x20 inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap_port}\n  }}\n\
             \x20 inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n    ssl = yes\n  }}\n\
             }}"
        )
        .expect("format config");
        std::fs::write(root.join("dovecot.conf"), conf).expect("write dovecot.conf");

        let mut server = Dovecot {
            binary,
            dir,
            child: None,
            imap_port,
            imaps_port,
            maildir,
            owner,
            delivered: AtomicU64::new(0),
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let root = self.dir.path();
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("dovecot.out"))
            .expect("output file");
        let child = Command::new(&self.binary)
            .arg("-F")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("output file"))
            .stderr(output)
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        for port in [self.imap_port, self.imaps_port] {
            while !wait_for_port(port, Duration::from_millis(100)) {
                let exited = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if exited.is_some() || std::time::Instant::now() >= deadline {
                    let logs = self.logs();
                    self.stop();
                    panic!("dovecot did not accept on port {port} ({exited:?}):\n{logs}");
                }
            }
        }
    }

    /// Disconnects every session of the test user, as an administrator or a server
    /// restart does (`doveadm kick`): clients get `* BYE` and a closed connection.
    pub fn kick(&self) {
        let doveadm =
            find_binary("doveadm", &["/usr/bin/doveadm"]).expect("doveadm (dovecot-core)");
        let output = Command::new(doveadm)
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .args(["kick", USER])
            .output()
            .expect("run doveadm");
        assert!(
            output.status.success(),
            "doveadm kick failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A connector spec for the test user. `Plain` and `StartTls` use the plain port,
    /// `Tls` the implicit-TLS one; TLS trusts the test certificate through `ca_file`.
    pub fn spec(&self, security: ImapSecurity) -> ImapSpec {
        let (host, port) = match security {
            ImapSecurity::Tls => ("localhost", self.imaps_port),
            ImapSecurity::StartTls | ImapSecurity::Plain => ("127.0.0.1", self.imap_port),
        };
        ImapSpec {
            host: host.to_string(),
            port,
            security,
            username: USER.to_string(),
            password: Secret::new(PASSWORD),
            mailbox: "INBOX".to_string(),
            mode: ImapMode::Poll,
            poll_interval: Duration::from_secs(3600),
            ca_file: (security != ImapSecurity::Plain).then(|| self.ca_file()),
        }
    }

    /// The user's Maildir (cur/, new/, tmp/).
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// The self-signed certificate (CN and SAN localhost, SAN 127.0.0.1).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Delivers one message the way an MTA does: written under `tmp/`, renamed into `new/`.
    pub fn deliver(&self, message: &[u8]) {
        let n = self.delivered.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let name = format!(
            "{}.M{nanos}P{}Q{n}.rapport-test",
            nanos / 1_000_000_000,
            std::process::id()
        );
        let tmp = self.maildir.join("tmp").join(&name);
        std::fs::write(&tmp, message).expect("write message");
        chown(&tmp, self.owner);
        std::fs::rename(&tmp, self.maildir.join("new").join(&name)).expect("deliver message");
    }

    /// Dovecot's log and output, for failure messages.
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("dovecot.out"), read("dovecot.log"))
    }

    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(10));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// (uid, gid) of a user from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let fields = passwd_entries().find(|fields| fields[0] == name)?;
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

fn user_name(uid: u32) -> Option<String> {
    passwd_entries()
        .find(|fields| fields.get(2).and_then(|f| f.parse::<u32>().ok()) == Some(uid))
        .map(|fields| fields[0].clone())
}

fn group_name(gid: u32) -> Option<String> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.get(2).and_then(|f| f.parse::<u32>().ok()) == Some(gid))
        .map(|fields| fields[0].to_string())
}

fn passwd_entries() -> impl Iterator<Item = Vec<String>> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(':').map(str::to_string).collect())
        .collect::<Vec<_>>()
        .into_iter()
}

fn chown(path: &Path, (uid, gid): (u32, u32)) {
    // Only root may give files away; otherwise they are ours already.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

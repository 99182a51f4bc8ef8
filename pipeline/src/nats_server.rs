//! The embedded default: a supervised `nats-server` child with JetStream, so Rapport runs
//! with no servers set up by hand and still goes through the real bus.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedNatsError {
    #[error(
        "cannot start nats-server {binary:?}: {source} (install nats-server, or set nats.server_binary or nats.url)"
    )]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("cannot create the JetStream store directory {dir}: {source}")]
    StoreDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "nats-server did not accept connections on 127.0.0.1:{port} within {secs} s; its log: {log}"
    )]
    NotReady { port: u16, secs: u64, log: PathBuf },
    #[error("no free loopback port: {0}")]
    NoPort(std::io::Error),
}

/// A running `nats-server` child. A watchdog restarts it on the same port if it dies;
/// dropping or [`EmbeddedNats::stop`] stops it (SIGTERM, then SIGKILL after 5 s).
pub struct EmbeddedNats {
    port: u16,
    child: Arc<Mutex<Option<Child>>>,
    watchdog: tokio::task::JoinHandle<()>,
    /// Written while this process runs the server, so others attach instead of competing.
    url_file: Option<PathBuf>,
}

const URL_FILE: &str = "rapport-nats.port";

impl EmbeddedNats {
    /// Starts `binary` with JetStream, its store under `data_dir/nats`, on a free loopback port.
    ///
    /// One store belongs to one server: when another Rapport process (a running daemon, say)
    /// already serves this data dir, this attaches to its server instead of starting a
    /// second one on the same files.
    pub async fn start(binary: &str, data_dir: &Path) -> Result<EmbeddedNats, EmbeddedNatsError> {
        let url_file = store_dir(data_dir)?.join(URL_FILE);
        if let Some(port) = std::fs::read_to_string(&url_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            info!(
                port,
                "attached to the nats-server another Rapport process runs for this data dir"
            );
            return Ok(EmbeddedNats {
                port,
                child: Arc::new(Mutex::new(None)),
                watchdog: tokio::spawn(async {}),
                url_file: None,
            });
        }
        let port = free_port().map_err(EmbeddedNatsError::NoPort)?;
        Self::start_on_port(binary, data_dir, port).await
    }

    /// Starts the server on a given port: a restart keeps the address clients know.
    pub async fn start_on_port(
        binary: &str,
        data_dir: &Path,
        port: u16,
    ) -> Result<EmbeddedNats, EmbeddedNatsError> {
        let store = store_dir(data_dir)?;
        let url_file = store.join(URL_FILE);
        let spawn = {
            let binary = binary.to_string();
            let store = store.clone();
            move || spawn_server(&binary, port, &store)
        };
        let child = spawn()?;
        wait_ready(port, &store.join("nats-server.log")).await?;
        info!(port, store = %store.display(), "embedded nats-server started");
        let _ = std::fs::write(&url_file, port.to_string());
        let child = Arc::new(Mutex::new(Some(child)));
        let watchdog = tokio::spawn(watch(child.clone(), spawn));
        Ok(EmbeddedNats {
            port,
            child,
            watchdog,
            url_file: Some(url_file),
        })
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Graceful stop: SIGTERM lets nats-server flush JetStream; SIGKILL if it hangs.
    pub async fn stop(self) {
        self.watchdog.abort();
        if let Some(file) = &self.url_file {
            let _ = std::fs::remove_file(file);
        }
        if let Some(mut child) = self.child.lock().await.take() {
            terminate(&mut child).await;
        }
    }
}

impl Drop for EmbeddedNats {
    fn drop(&mut self) {
        self.watchdog.abort();
        if let Some(file) = &self.url_file {
            let _ = std::fs::remove_file(file);
        }
        if let Ok(mut guard) = self.child.try_lock()
            && let Some(child) = guard.as_mut()
            && let Some(pid) = child.id()
        {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
}

/// `data_dir/nats`, created if missing: the JetStream store, its log and the port file.
fn store_dir(data_dir: &Path) -> Result<PathBuf, EmbeddedNatsError> {
    let store = data_dir.join("nats");
    std::fs::create_dir_all(&store).map_err(|source| EmbeddedNatsError::StoreDir {
        dir: store.clone(),
        source,
    })?;
    Ok(store)
}

fn spawn_server(binary: &str, port: u16, store: &Path) -> Result<Child, EmbeddedNatsError> {
    let log = store.join("nats-server.log");
    let mut command = Command::new(binary);
    command
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .arg("-l")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C in Rapport's terminal must not stop the bus under
        // Rapport's feet while it drains; Rapport stops the server itself, last (SIGTERM,
        // so JetStream flushes its store).
        .process_group(0);
    // SAFETY: prctl(2) only sets a flag of the child about to exec; it allocates nothing.
    // If Rapport dies without stopping it (kill -9), the kernel sends the server SIGTERM
    // instead of leaving an orphan holding the store.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().map_err(|source| EmbeddedNatsError::Spawn {
        binary: binary.to_string(),
        source,
    })
}

/// Restarts the server when it exits unexpectedly, on the same port so clients reconnect.
async fn watch(
    child: Arc<Mutex<Option<Child>>>,
    spawn: impl Fn() -> Result<Child, EmbeddedNatsError> + Send + 'static,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut guard = child.lock().await;
        let Some(running) = guard.as_mut() else {
            return;
        };
        match running.try_wait() {
            Ok(None) => {
                backoff = Duration::from_millis(200);
                continue;
            }
            Ok(Some(status)) => warn!(%status, "embedded nats-server exited; restarting"),
            Err(e) => warn!(error = %e, "cannot poll embedded nats-server; restarting"),
        }
        drop(guard);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
        match spawn() {
            Ok(new_child) => *child.lock().await = Some(new_child),
            Err(e) => warn!(error = %e, "embedded nats-server restart failed"),
        }
    }
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn wait_ready(port: u16, log: &Path) -> Result<(), EmbeddedNatsError> {
    const SECS: u64 = 15;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(SECS);
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(EmbeddedNatsError::NotReady {
        port,
        secs: SECS,
        log: log.to_path_buf(),
    })
}

/// A loopback port that was free a moment ago (the OS picks it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

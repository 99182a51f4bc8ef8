//! Helpers shared by the pipeline's integration tests: a throwaway nats-server per test
//! (never the system one on 4222), the bus on it, stream counts, and other real servers.
//!
//! Each test binary uses a different part of this module, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod dovecot;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use rapport_config::Settings;
use rapport_pipeline::Bus;
use rapport_pipeline::bus::{DLQ_STREAM, INTERACTIONS_STREAM};
use rapport_pipeline::nats_server::EmbeddedNats;

/// A `nats-server -js` of its own: a free loopback port and a JetStream store in a
/// temporary directory, run by the same supervisor Rapport uses for its embedded default
/// ([`EmbeddedNats`]). Stopped when dropped.
pub struct NatsServer {
    binary: String,
    port: u16,
    dir: tempfile::TempDir,
    server: Option<EmbeddedNats>,
}

impl NatsServer {
    /// Starts the server; panics with a clear message when nats-server is missing.
    pub async fn start() -> NatsServer {
        let binary = find_binary(
            "nats-server",
            &["/usr/sbin/nats-server", "/usr/bin/nats-server"],
        )
        .expect("nats-server not found in /usr/sbin or on PATH (install nats-server)")
        .display()
        .to_string();
        let dir = tempfile::Builder::new()
            .prefix("rapport-nats-")
            .tempdir()
            .expect("temporary directory");
        let server = EmbeddedNats::start(&binary, dir.path())
            .await
            .expect("nats-server starts");
        NatsServer {
            binary,
            port: server.port(),
            dir,
            server: Some(server),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the JetStream store.
    pub fn store(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server gracefully (JetStream flushes its store); the port and the store
    /// are kept for [`NatsServer::restart`].
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = EmbeddedNats::start_on_port(&self.binary, self.dir.path(), self.port)
            .await
            .expect("nats-server restarts");
        self.server = Some(server);
    }
}

pub async fn bus(url: &str) -> Bus {
    Bus::connect(url, &Settings::default())
        .await
        .unwrap_or_else(|e| panic!("cannot connect the bus to {url}: {e}"))
}

/// Waits until the bus answers JetStream requests again (after a server restart the
/// client reconnects with back-off and JetStream recovers its streams first).
pub async fn wait_for_jetstream(bus: &Bus, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        // Short tries: a request sent while the client is still reconnecting is lost and
        // would otherwise wait out the whole JetStream request timeout.
        let attempt = tokio::time::timeout(Duration::from_millis(500), async {
            let mut stream = bus.jetstream.get_stream(INTERACTIONS_STREAM).await.ok()?;
            stream.info().await.ok().map(|_| ())
        });
        if let Ok(Some(())) = attempt.await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "JetStream not ready within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages currently stored in a stream.
pub async fn stream_count(bus: &Bus, stream: &str) -> u64 {
    let mut stream = bus
        .jetstream
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("stream {stream}: {e}"));
    stream.info().await.expect("stream info").state.messages
}

/// Messages in `RAPPORT_INTERACTIONS`.
pub async fn interactions(bus: &Bus) -> u64 {
    stream_count(bus, INTERACTIONS_STREAM).await
}

/// Messages in `RAPPORT_DLQ`.
pub async fn dead_letters(bus: &Bus) -> u64 {
    stream_count(bus, DLQ_STREAM).await
}

/// Polls a stream until it holds at least `at_least` messages or `limit` passes; returns
/// the last count seen (the caller asserts on it).
pub async fn wait_for_count(bus: &Bus, stream: &str, at_least: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let count = stream_count(bus, stream).await;
        if count >= at_least || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// True once something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The first of `candidates` that exists, else `name` on PATH.
pub fn find_binary(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps the child.
pub fn terminate(mut child: Child, grace: Duration) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

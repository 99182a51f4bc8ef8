//! A `rapport run` serving its HTTP API on a store the demo filled: for the API and
//! dashboard tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{RAPPORT, nats_binary};

pub const TOKEN: &str = "api-test-token";

/// `rapport demo --data-dir DATA`: the bundled corpus analysed and kept.
pub fn fill_with_demo(data: &Path, cache: &Path) {
    let out = Command::new(RAPPORT)
        .args(["demo", "--json", "--data-dir"])
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RAPPORT_MODELS_CACHE", cache)
        .env("RAPPORT_NATS_SERVER_BINARY", nats_binary())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A config file in `data` with one `files` connector `name` watching `inbox` every second.
pub fn files_connector_config(data: &Path, name: &str, inbox: &Path) -> std::path::PathBuf {
    let config = data.join("rapport.toml");
    std::fs::write(
        &config,
        format!(
            "[connectors.{name}]\nkind = \"files\"\npath = \"{}\"\npoll_interval_secs = 1\n",
            inbox.display()
        ),
    )
    .unwrap();
    config
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `rapport run` with its API on a free loopback port and [`TOKEN`]; killed on drop.
pub struct ApiDaemon {
    child: Child,
    pub port: u16,
    pub base: String,
}

impl ApiDaemon {
    /// Starts the daemon on `data` (and `config`, if any) against `nats_url`, and waits
    /// until `/healthz` answers.
    pub async fn start(
        data: &Path,
        cache: &Path,
        nats_url: &str,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> ApiDaemon {
        let port = free_port();
        let mut command = Command::new(RAPPORT);
        command.arg("run");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RAPPORT_NATS_URL", nats_url)
            .env("RAPPORT_DATA_DIR", data)
            .env("RAPPORT_NATS_SERVER_BINARY", nats_binary())
            .env("RAPPORT_API_ADDR", format!("127.0.0.1:{port}"))
            .env("RAPPORT_API_TOKEN", TOKEN)
            .env("RAPPORT_MODELS_CACHE", cache)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut daemon = ApiDaemon {
            child: command.spawn().unwrap(),
            port,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let health = http.get(format!("{}/healthz", daemon.base)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return daemon;
            }
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("rapport run exited ({status}) before its API came up");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the API did not come up on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl ApiDaemon {
    /// `GET path` with the token; the body as text, whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET path` with the token; the body as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let text = self.get_text(path).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    }
}

impl Drop for ApiDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The dashboard end-to-end in headless Chromium: `rapport run` on the demo's store, and
//! `tests/browser/dashboard.cjs` (playwright-core) signing in, rendering every page with
//! the demo's data, acknowledging a flag through the UI and switching to Danish.
//! Screenshots go to `target/screenshots/`.
//!
//! Needs Chromium (`CHROMIUM`, default `/usr/bin/chromium`), Node.js and playwright-core
//! (`PLAYWRIGHT_CORE`, default `~/.cache/rapport-browser/node_modules/playwright-core`);
//! `.ci/run` installs them. Elsewhere a missing one skips the test with the reason; in CI
//! (`CI=true`) it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::TestNats;
use support::api::{ApiDaemon, TOKEN, files_connector_config, fill_with_demo};

/// The browser, Node and playwright-core, or why not.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!(
            "no Chromium at {} (apt-get install chromium)",
            chromium.display()
        ));
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let playwright = std::env::var("PLAYWRIGHT_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(&home).join(".cache/rapport-browser/node_modules/playwright-core")
        });
    if !playwright.join("package.json").exists() {
        return Err(format!(
            "no playwright-core at {} (npm install --prefix ~/.cache/rapport-browser playwright-core)",
            playwright.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no node on PATH".into());
    }
    Ok((chromium, playwright))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_shows_the_demo_and_a_flag_is_acknowledged() {
    let (chromium, playwright) = match browser_tools() {
        Ok(tools) => tools,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI must run the browser test: {why}")
        }
        Err(why) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIP: the dashboard test: {why}");
            return;
        }
    };
    let Some(cache) = support::model_wheels() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    fill_with_demo(data.path(), &cache);
    let nats = TestNats::start().await;
    // A connector with something to read, so the connectors page has a row to show.
    let inbox = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/corpus/chat/nl-chat-20260212-1544.json"),
        inbox.path().join("chat.json"),
    )
    .unwrap();
    let config = files_connector_config(data.path(), "shop-chat", inbox.path());
    let daemon = ApiDaemon::start(data.path(), &cache, &nats.url(), Some(&config), &[]).await;

    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let out = tokio::task::spawn_blocking({
        let base = daemon.base.clone();
        let screenshots = screenshots.clone();
        move || {
            Command::new("node")
                .arg(script)
                .args([base.as_str(), TOKEN])
                .arg(&screenshots)
                .env("PLAYWRIGHT_CORE", playwright)
                .env("CHROMIUM", chromium)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The acknowledgement made in the browser is in the store, with who did it.
    let acknowledged = report["acknowledged"].as_str().unwrap();
    let flags = daemon.get_json("/api/flags?status=acknowledged").await;
    let flag = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == acknowledged)
        .unwrap_or_else(|| panic!("{acknowledged} is not acknowledged: {flags}"));
    assert_eq!(flag["status_by"], "mette");

    for page in [
        "portfolio",
        "flags",
        "flags-acknowledged",
        "customer",
        "search",
        "connectors",
        "portfolio-da",
        "flags-da",
    ] {
        let shot = screenshots.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot)
            .unwrap_or_else(|e| panic!("{}: {e}", shot.display()))
            .len();
        assert!(size > 10_000, "{} is {size} bytes", shot.display());
    }
}

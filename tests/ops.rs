//! The operations samples in `config/`: the systemd unit passes `systemd-analyze verify`
//! with its command line pointed at this build, and the logrotate rule rotates a log.
//! Each check skips with the reason where the tool is not installed.

mod support;

use std::path::Path;
use std::process::Command;

use support::RAPPORT;

fn config_file(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name),
    )
    .unwrap()
}

fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {why}");
}

#[test]
fn the_systemd_unit_verifies_and_outlasts_the_drain() {
    let unit = config_file("rapport.service");
    let timeout: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec is set")
        .parse()
        .unwrap();
    assert!(
        timeout > 30,
        "systemd must wait out the 30 s drain, not {timeout} s"
    );
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args[..2], ["run", "--config"]);
    // The flags the unit passes are ones `rapport` accepts.
    let help = Command::new(RAPPORT)
        .args(&args[..1])
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "rapport run does not take {flag}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip("systemd-analyze is not installed: the unit is not verified");
    }
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("rapport.service");
    std::fs::write(&local, unit.replace("/usr/local/bin/rapport", RAPPORT)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Unknown"), "{stderr}");
}

#[test]
fn the_logrotate_rule_rotates_the_log_in_place() {
    if Command::new("logrotate").arg("--version").output().is_err() {
        return skip("logrotate is not installed: the rule is not tried");
    }
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("log");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("rapport.log");
    std::fs::write(
        &log,
        "{\"level\":\"INFO\",\"message\":\"rapport running\"}\n",
    )
    .unwrap();
    // The rule as shipped, for this directory and the user running the test.
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let group = String::from_utf8(Command::new("id").arg("-gn").output().unwrap().stdout).unwrap();
    let rule = config_file("rapport.logrotate")
        .replace("/var/log/rapport", logs.to_str().unwrap())
        .replace(
            "su rapport rapport",
            &format!("su {} {}", user.trim(), group.trim()),
        );
    let conf = dir.path().join("rapport.logrotate");
    std::fs::write(&conf, rule).unwrap();
    let out = Command::new("logrotate")
        .arg("--force")
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("error"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        0,
        "truncated in place"
    );
    let rotated = std::fs::read_to_string(logs.join("rapport.log.1")).unwrap();
    assert!(rotated.contains("rapport running"), "{rotated}");
}

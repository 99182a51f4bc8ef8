//! Validation of `[smtp]`, `[alerts.<name>]` and the alert links' `api.public_url`: every
//! problem a rule has is found by `rapport config check`, not by the first alert.

use std::str::FromStr;

use lettre::message::Mailbox;

use crate::connector::{KeyProblem, check_optional_file};
use crate::settings::{ALERT_LANGUAGES, AlertMode, FLAG_KINDS, SEVERITIES, Settings};

pub(crate) fn check(settings: &Settings) -> Vec<KeyProblem> {
    let mut found: Vec<KeyProblem> = Vec::new();
    let smtp = &settings.smtp;
    if smtp.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
        found.push((
            "smtp.host".into(),
            "is empty: set a host or remove the key".into(),
        ));
    }
    if smtp.host.is_none()
        && let Some(rule) = settings.alerts.keys().next()
    {
        found.push((
            format!("alerts.{rule}"),
            "alert rules need a mail server: set smtp.host (and smtp.from)".into(),
        ));
    }
    if Mailbox::from_str(&smtp.from).is_err() {
        found.push((
            "smtp.from".into(),
            format!(
                "{:?} is not a sender address like \"Rapport <rapport@example.dk>\"",
                smtp.from
            ),
        ));
    }
    if smtp.password.is_some() && smtp.password_file.is_some() {
        found.push((
            "smtp.password".into(),
            "set either smtp.password or smtp.password_file, not both".into(),
        ));
    }
    if smtp.username.is_some() && smtp.password.is_none() && smtp.password_file.is_none() {
        found.push((
            "smtp.username".into(),
            "needs a password: set smtp.password_file or RAPPORT_SMTP_PASSWORD".into(),
        ));
    }
    check_optional_file(
        "smtp.password_file",
        smtp.password_file.as_deref(),
        &mut found,
    );
    check_optional_file("smtp.ca_file", smtp.ca_file.as_deref(), &mut found);
    if smtp.timeout_secs == 0 {
        found.push(("smtp.timeout_secs".into(), "must be at least 1".into()));
    }
    if smtp.retry_initial_secs == 0 {
        found.push((
            "smtp.retry_initial_secs".into(),
            "must be at least 1".into(),
        ));
    }
    if smtp.retry_max_secs < smtp.retry_initial_secs {
        found.push((
            "smtp.retry_max_secs".into(),
            format!(
                "{} is less than smtp.retry_initial_secs ({})",
                smtp.retry_max_secs, smtp.retry_initial_secs
            ),
        ));
    }
    if let Some(url) = &settings.api.public_url {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => found.push((
                "api.public_url".into(),
                format!("{url:?} is not a URL like https://rapport.example.dk/"),
            )),
        }
    }
    for (name, rule) in &settings.alerts {
        let key = |k: &str| format!("alerts.{name}.{k}");
        // The name keys the rule's queue in JetStream and labels its metrics.
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            found.push((
                format!("alerts.{name}"),
                "a rule name may hold only letters, digits, '-' and '_'".into(),
            ));
        }
        for kind in &rule.kinds {
            if !FLAG_KINDS.contains(&kind.as_str()) {
                found.push((
                    key("kinds"),
                    format!(
                        "{kind:?} is not a flag kind; expected {}",
                        FLAG_KINDS.join(", ")
                    ),
                ));
            }
        }
        if !SEVERITIES.contains(&rule.min_severity.as_str()) {
            found.push((
                key("min_severity"),
                format!(
                    "{:?} is not a severity; expected {}",
                    rule.min_severity,
                    SEVERITIES.join(", ")
                ),
            ));
        }
        if rule.recipients.is_empty() {
            found.push((key("recipients"), "needs at least one address".into()));
        }
        for recipient in &rule.recipients {
            if Mailbox::from_str(recipient).is_err() {
                found.push((
                    key("recipients"),
                    format!("{recipient:?} is not an e-mail address"),
                ));
            }
        }
        if rule.mode == AlertMode::Digest && rule.digest_minutes == 0 {
            found.push((key("digest_minutes"), "must be at least 1".into()));
        }
        if !ALERT_LANGUAGES.contains(&rule.language.as_str()) {
            found.push((
                key("language"),
                format!(
                    "{:?} is not a language alerts are written in; expected {}",
                    rule.language,
                    ALERT_LANGUAGES.join(" or ")
                ),
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    fn problems(toml: &str) -> Vec<String> {
        match load_str(toml, "t.toml", Vec::new()) {
            Ok(_) => Vec::new(),
            Err(p) => p.0.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_rule_loads_and_a_bad_one_names_each_problem() {
        let good = "[smtp]\nhost = \"mail.example.dk\"\nfrom = \"Rapport <rapport@example.dk>\"\n\
                    [alerts.service]\nkinds = [\"complaint\", \"honesty\"]\nmin_severity = \"medium\"\n\
                    recipients = [\"Service <service@example.dk>\"]\nmode = \"digest\"\ndigest_minutes = 15\n";
        assert_eq!(problems(good), Vec::<String>::new());

        let bad = "[smtp]\nhost = \"mail.example.dk\"\nfrom = \"not an address\"\n\
                   [alerts.\"x y\"]\nkinds = [\"complain\"]\nmin_severity = \"urgent\"\n\
                   recipients = [\"nobody\"]\nmode = \"digest\"\ndigest_minutes = 0\nlanguage = \"fr\"\n";
        let found = problems(bad).join("\n");
        for expected in [
            "smtp.from",
            "only letters, digits",
            "\"complain\" is not a flag kind",
            "\"urgent\" is not a severity",
            "\"nobody\" is not an e-mail address",
            "alerts.x y.digest_minutes",
            "\"fr\" is not a language",
        ] {
            assert!(
                found.contains(expected),
                "{expected} missing from:\n{found}"
            );
        }
    }

    #[test]
    fn rules_need_a_mail_server_and_an_unknown_mode_is_named() {
        let found = problems("[alerts.service]\nrecipients = [\"a@example.dk\"]\n").join("\n");
        assert!(found.contains("set smtp.host"), "{found}");
        let found = problems(
            "[smtp]\nhost = \"m\"\n[alerts.service]\nrecipients = [\"a@example.dk\"]\nmode = \"weekly\"\n",
        )
        .join("\n");
        assert!(found.contains("alerts.service.mode"), "{found}");
    }

    #[test]
    fn rule_keys_can_be_overridden_from_the_environment() {
        let (settings, _) = load_str(
            "[smtp]\nhost = \"m\"\n[alerts.service]\nrecipients = [\"a@example.dk\"]\n",
            "t.toml",
            vec![(
                "RAPPORT_ALERTS_SERVICE_RECIPIENTS".to_string(),
                "[\"b@example.dk\"]".to_string(),
            )],
        )
        .unwrap();
        assert_eq!(settings.alerts["service"].recipients, ["b@example.dk"]);
    }
}

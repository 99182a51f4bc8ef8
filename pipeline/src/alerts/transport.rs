//! The mail server connection (`[smtp]`): TLS from the first byte, STARTTLS (required, never
//! silently skipped) or plain; rustls with the webpki roots plus `ca_file`; optional login.

use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rapport_config::settings::{SmtpSecurity, SmtpSettings};
use sha2::{Digest, Sha256};

use super::mail::{self, Envelope};
use super::{AlertError, AlertRule, QueuedAlert};

/// Sends alert mail for every rule through one mail server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    dashboard_url: String,
}

impl Mailer {
    pub fn new(smtp: &SmtpSettings, dashboard_url: &str) -> Result<Mailer, AlertError> {
        let host = smtp
            .host
            .clone()
            .ok_or_else(|| AlertError::Smtp("no smtp.host set".into()))?;
        let from = Mailbox::from_str(&smtp.from)
            .map_err(|e| AlertError::Smtp(format!("smtp.from {:?}: {e}", smtp.from)))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(smtp.port_or_default())
            .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
        if smtp.security != SmtpSecurity::Plain {
            let mut tls = TlsParameters::builder(host.clone());
            if let Some(ca) = &smtp.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    AlertError::Smtp(format!("cannot read smtp.ca_file {}: {e}", ca.display()))
                })?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| AlertError::Smtp(format!("smtp.ca_file {}: {e}", ca.display())))?;
                tls = tls.add_root_certificate(certificate);
            }
            let tls = tls
                .build_rustls()
                .map_err(|e| AlertError::Smtp(format!("TLS for {host}: {e}")))?;
            builder = builder.tls(match smtp.security {
                SmtpSecurity::Tls => Tls::Wrapper(tls),
                _ => Tls::Required(tls),
            });
        }
        if let Some(username) = &smtp.username {
            builder = builder.credentials(Credentials::new(username.clone(), password(smtp)?));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            dashboard_url: dashboard_url.to_string(),
        })
    }

    /// Mails `alerts` to the rule's recipients: one alert, or a digest of several. The
    /// error is the mail server's answer (or why there was none).
    pub(super) async fn send(
        &self,
        rule: &AlertRule,
        alerts: &[&QueuedAlert],
    ) -> Result<(), String> {
        let flags: Vec<_> = alerts.iter().map(|a| &a.flag).collect();
        let envelope = Envelope {
            from: &self.from,
            to: &rule.recipients,
            message_id: self.message_id(rule, alerts),
            rule: &rule.name,
            language: rule.language,
            include_excerpt: rule.include_excerpt,
            dashboard_url: &self.dashboard_url,
        };
        let message = mail::compose(&envelope, &flags).map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| explained(e.to_string()))
    }

    /// The same for the same rule and flags, whenever it is sent.
    fn message_id(&self, rule: &AlertRule, alerts: &[&QueuedAlert]) -> String {
        let mut hash = Sha256::new();
        hash.update(rule.name.as_bytes());
        for alert in alerts {
            hash.update([0]);
            hash.update(alert.flag.id.as_bytes());
        }
        format!(
            "<{}.alert@{}>",
            &hex::encode(hash.finalize())[..32],
            self.from.email.domain()
        )
    }
}

/// The mail transport's error, with what to do where its words alone do not say.
fn explained(error: String) -> String {
    if error.contains("CaUsedAsEndEntity") {
        // `openssl req -x509` marks a self-signed certificate as a CA by default.
        format!(
            "{error}: the server presents a CA certificate as its own; give it a certificate \
             issued by that CA (trusted through smtp.ca_file) or a self-signed one with \
             basicConstraints CA:FALSE"
        )
    } else {
        error
    }
}

/// `smtp.password`, or the first line of `smtp.password_file`.
fn password(smtp: &SmtpSettings) -> Result<String, AlertError> {
    match (&smtp.password, &smtp.password_file) {
        (Some(password), _) => Ok(password.clone()),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|text| text.lines().next().unwrap_or_default().trim().to_string())
            .map_err(|e| {
                AlertError::Smtp(format!(
                    "cannot read smtp.password_file {}: {e}",
                    file.display()
                ))
            }),
        (None, None) => Err(AlertError::Smtp(
            "smtp.username is set without a password".into(),
        )),
    }
}

//! IMAP: one mailbox read by UID, resumably, with IDLE push (or polling) for new mail.
//!
//! The cursor is `{uidvalidity, last_uid}` in the `rapport-checkpoints` bucket under
//! `imap:<user>@<host>/<mailbox>`. Each pass runs `UID FETCH <last_uid+1>:* (UID INTERNALDATE
//! BODY.PEEK[])` — `PEEK`, so Rapport never marks mail as read — hands every message to the
//! sink as one unit (interactions, or a dead letter with the raw message), commits the sink
//! and only then moves the cursor. A new UIDVALIDITY means the server renumbered the
//! mailbox: reading starts over, and since interaction ids come from the Message-ID,
//! JetStream's duplicate window drops what was already stored.
//!
//! Security: `tls` is implicit TLS (port 993), `starttls` upgrades a plain connection with
//! `STARTTLS` before logging in, `plain` sends the password in clear and is meant for
//! loopback and tests. Certificates are checked against the Mozilla roots (webpki-roots)
//! plus the PEM certificates of `ca_file`; the host name is the SNI and the name checked.
//! A server certificate that is itself in `ca_file` is trusted as pinned (self-signed).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use async_imap::types::{Capabilities, Capability, Fetch, Mailbox};
use async_imap::{Client, Session};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use rapport_config::{ImapMode, ImapSecurity, ImapSpec};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use tracing::{debug, info, warn};

use crate::bus::BusError;
use crate::checkpoint::Checkpoints;
use crate::sources::context::{CommitBatch, SourceContext};
use crate::sources::emit::{emit_unit, parse_guarded};
use crate::sources::kind::{BuiltSource, SourceKind, Tested};
use crate::sources::run::{Pass, Source, SourceError};
use crate::sources::sink::Sink;

/// Messages handed to the sink between two commits (and cursor writes).
const COMMIT_EVERY: usize = 500;
/// TCP connect plus TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// One command's answer (or, while fetching, the next message of it).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// RFC 2177 asks clients to re-issue IDLE at least every 29 minutes.
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to IMAP server {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("TLS with IMAP server {host}: {message}")]
    Tls { host: String, message: String },
    #[error("cannot use ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("login as {user:?} at IMAP server {host} failed: {message}")]
    Login {
        user: String,
        host: String,
        message: String,
    },
    #[error("cannot select mailbox {mailbox:?} on IMAP server {host}: {message}")]
    Select {
        mailbox: String,
        host: String,
        message: String,
    },
    #[error("fetching mail from {mailbox:?} on IMAP server {host} failed: {message}")]
    Fetch {
        mailbox: String,
        host: String,
        message: String,
    },
    #[error("IDLE on IMAP server {host} failed: {message}")]
    Idle { host: String, message: String },
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl ImapError {
    /// Errors that retrying cannot fix without a configuration change.
    fn is_permanent(&self) -> bool {
        matches!(self, ImapError::CaFile { .. })
    }
}

impl From<ImapError> for SourceError {
    fn from(error: ImapError) -> Self {
        if error.is_permanent() {
            SourceError::permanent(error.to_string())
        } else {
            SourceError::transient(error.to_string())
        }
    }
}

/// `kind = "imap"`: one mailbox of one account.
pub static SOURCE: SourceKind = SourceKind {
    kind: "imap",
    build: |connector, cx, _, sink| {
        let rapport_config::ConnectorSpec::Imap(spec) = &connector.spec else {
            unreachable!("the registry hands an imap source only imap connectors")
        };
        Ok(BuiltSource::Pulled {
            source: Box::new(ImapReader::new(cx, spec.clone())),
            sink,
        })
    },
    test: |connector, _, _| {
        let rapport_config::ConnectorSpec::Imap(spec) = &connector.spec else {
            unreachable!("the registry hands an imap source only imap connectors")
        };
        Box::pin(async move { Tested::from_result(test(spec).await) })
    },
};

/// The cursor of one mailbox: everything up to `last_uid` under `uidvalidity` is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImapCheckpoint {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// Reads one mailbox of one IMAP account.
pub struct ImapReader {
    cx: SourceContext,
    spec: ImapSpec,
    key: String,
    /// The cursor as last loaded or saved; `None` until loaded (and in dry-run: in memory).
    cursor: Option<ImapCheckpoint>,
    loaded: bool,
    /// The connection kept between passes by a running connector.
    open: Option<OpenSession>,
}

struct OpenSession {
    session: ImapSession,
    /// IDLE is configured and the server offers it.
    idle: bool,
}

impl ImapReader {
    /// Reads with `cx`'s parse settings; the source is set per message.
    pub fn new(cx: SourceContext, spec: ImapSpec) -> Self {
        let key = Checkpoints::key(
            &cx.name,
            &format!("imap:{}@{}/{}", spec.username, spec.host, spec.mailbox),
        );
        ImapReader {
            cx,
            spec,
            key,
            cursor: None,
            loaded: false,
            open: None,
        }
    }

    /// One pass on a connection of its own: connects, reads everything new since the
    /// cursor, logs out. Returns the number of interactions handed to the sink.
    pub async fn fetch_new(&mut self, sink: &mut Sink) -> Result<u64, ImapError> {
        let mut connected = open(&self.spec).await?;
        let pass = self.read_new(&mut connected.session, sink).await?;
        logout(connected.session).await;
        Ok(pass.handed)
    }

    /// The running connector's connection: opened on first use and after a failure.
    async fn connect(&self) -> Result<OpenSession, ImapError> {
        let Connected {
            session,
            capabilities,
            ..
        } = open(&self.spec).await?;
        let idle = self.spec.mode == ImapMode::Idle && has_capability(&capabilities, "IDLE");
        if self.spec.mode == ImapMode::Idle && !idle {
            warn!(connector = %self.cx.name, host = %self.spec.host,
                poll_secs = self.spec.poll_interval.as_secs(),
                "the IMAP server does not offer IDLE; polling instead");
        }
        info!(connector = %self.cx.name, host = %self.spec.host, mailbox = %self.spec.mailbox,
            idle, "IMAP connected");
        Ok(OpenSession { session, idle })
    }

    /// IDLE until the server reports a change, the renewal interval passes, or shutdown.
    /// Returns the session (after `DONE`).
    async fn idle(&self, session: ImapSession) -> Result<ImapSession, ImapError> {
        let idle_error = |message: String| ImapError::Idle {
            host: self.spec.host.clone(),
            message,
        };
        let mut shutdown = self.cx.shutdown.clone();
        let mut handle = session.idle();
        timeout(COMMAND_TIMEOUT, handle.init())
            .await
            .map_err(|_| idle_error(no_answer()))?
            .map_err(|e| idle_error(e.to_string()))?;
        {
            let (wait, _interrupt) = handle.wait_with_timeout(IDLE_RENEW);
            tokio::select! {
                woke = wait => {
                    let woke = woke.map_err(|e| idle_error(e.to_string()))?;
                    debug!(connector = %self.cx.name, ?woke, "IDLE ended");
                }
                // The server's keep-alives reset the library's own timeout, so renew here.
                () = tokio::time::sleep(IDLE_RENEW) => {}
                () = shutdown.wait() => {}
            }
        }
        timeout(COMMAND_TIMEOUT, handle.done())
            .await
            .map_err(|_| idle_error(no_answer()))?
            .map_err(|e| idle_error(e.to_string()))
    }

    /// Selects the mailbox and hands over every message after the cursor. A long first
    /// read stops at the next commit once shutdown is requested.
    async fn read_new(
        &mut self,
        session: &mut ImapSession,
        sink: &mut Sink,
    ) -> Result<Pass, ImapError> {
        let mailbox = select(session, &self.spec).await?;
        let uidvalidity = mailbox.uid_validity.unwrap_or(0);
        let mut last_uid = match self.load_cursor().await? {
            Some(cursor) if cursor.uidvalidity == uidvalidity => cursor.last_uid,
            Some(cursor) => {
                info!(connector = %self.cx.name, mailbox = %self.spec.mailbox,
                    old = cursor.uidvalidity, new = uidvalidity,
                    "UIDVALIDITY changed: reading the mailbox again (duplicates are dropped)");
                0
            }
            None => 0,
        };
        // `n:*` always returns the newest message, so skip the command when UIDNEXT says
        // there is nothing new (most polls and wake-ups for flag changes).
        let nothing_new = mailbox.exists == 0
            || mailbox
                .uid_next
                .is_some_and(|next| next <= last_uid.saturating_add(1));
        if nothing_new {
            return Ok(Pass {
                handed: 0,
                complete: true,
            });
        }
        let (mailbox_name, host) = (self.spec.mailbox.clone(), self.spec.host.clone());
        let fetch_error = |message: String| ImapError::Fetch {
            mailbox: mailbox_name.clone(),
            host: host.clone(),
            message,
        };
        let range = format!("{}:*", last_uid.saturating_add(1));
        let mut fetches = timeout(
            COMMAND_TIMEOUT,
            session.uid_fetch(&range, "(UID INTERNALDATE BODY.PEEK[])"),
        )
        .await
        .map_err(|_| fetch_error(no_answer()))?
        .map_err(|e| fetch_error(e.to_string()))?;
        let mut handed = 0;
        let mut batch = CommitBatch::every(COMMIT_EVERY);
        let mut highest = last_uid;
        loop {
            let next = timeout(COMMAND_TIMEOUT, fetches.next())
                .await
                .map_err(|_| fetch_error(no_answer()))?;
            let Some(fetch) = next else { break };
            let fetch = fetch.map_err(|e| fetch_error(e.to_string()))?;
            let Some(uid) = fetch.uid else {
                // An unsolicited FETCH (a flag change) carries no UID: not one of ours.
                continue;
            };
            if uid <= last_uid {
                continue;
            }
            handed += self.hand_over(sink, uid, &fetch).await?;
            highest = highest.max(uid);
            // Messages, not interactions: a commit every so many fetched bodies.
            if batch.handed(1) {
                self.commit(sink, uidvalidity, highest).await?;
                last_uid = highest;
                if self.cx.shutdown.requested() {
                    return Ok(Pass {
                        handed,
                        complete: false,
                    });
                }
            }
        }
        drop(fetches);
        self.commit(sink, uidvalidity, highest).await?;
        Ok(Pass {
            handed,
            complete: true,
        })
    }

    /// One fetched message → its interactions on the sink, or a dead letter.
    async fn hand_over(&self, sink: &mut Sink, uid: u32, fetch: &Fetch) -> Result<u64, BusError> {
        let source = format!(
            "imap://{}@{}/{};UID={uid}",
            self.spec.username, self.spec.host, self.spec.mailbox
        );
        let Some(body) = fetch.body() else {
            let reason = format!("the server returned no body for UID {uid}");
            self.cx
                .reject(sink, &source, None, reason, Bytes::new())
                .await?;
            return Ok(0);
        };
        let raw = Bytes::copy_from_slice(body);
        let received = fetch
            .internal_date()
            .and_then(|date| OffsetDateTime::from_unix_timestamp(date.timestamp()).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        let ctx = self.cx.parse_context(&source, received);
        // parse_eml checks the size caps itself; a parser panic becomes a dead letter.
        let mut handed = 0;
        for unit in parse_guarded(raw.len(), || {
            rapport_connectors::Format::Eml.parse(&raw, &ctx)
        }) {
            debug!(connector = %self.cx.name, uid, bytes = raw.len(), ok = unit.outcome.is_ok(), "message");
            handed += emit_unit(sink, &self.cx, &source, unit, &raw, 0)
                .await?
                .unwrap_or(0);
        }
        Ok(handed)
    }

    /// Waits until the sink stored everything handed over, then moves the cursor.
    async fn commit(
        &mut self,
        sink: &mut Sink,
        uidvalidity: u32,
        last_uid: u32,
    ) -> Result<(), BusError> {
        self.cx.commit(sink).await?;
        let cursor = ImapCheckpoint {
            uidvalidity,
            last_uid,
        };
        if self.cursor != Some(cursor) {
            if let Some(checkpoints) = &self.cx.checkpoints {
                checkpoints.put(&self.key, &cursor).await?;
            }
            self.cursor = Some(cursor);
        }
        Ok(())
    }

    async fn load_cursor(&mut self) -> Result<Option<ImapCheckpoint>, BusError> {
        if !self.loaded {
            if let Some(checkpoints) = &self.cx.checkpoints {
                self.cursor = checkpoints.get(&self.key).await?;
            }
            self.loaded = true;
        }
        Ok(self.cursor)
    }
}

impl Source for ImapReader {
    fn context(&self) -> &SourceContext {
        &self.cx
    }

    /// Connects when no connection is open, then reads what is new on it. A connection
    /// that fails, or stops mid-fetch for shutdown (the rest of the answer is still on the
    /// wire), is dropped rather than logged out.
    fn pass<'a>(&'a mut self, sink: &'a mut Sink) -> BoxFuture<'a, Result<Pass, SourceError>> {
        Box::pin(async move {
            let mut open = match self.open.take() {
                Some(open) => open,
                None => self.connect().await?,
            };
            let pass = self.read_new(&mut open.session, sink).await?;
            debug!(connector = %self.cx.name, handed = pass.handed, "IMAP pass done");
            if pass.complete {
                // Notifications were read by the pass's commands; the next SELECT reports anew.
                while open.session.unsolicited_responses.try_recv().is_ok() {}
                self.open = Some(open);
            }
            Ok(pass)
        })
    }

    /// IDLE where the server offers it, else the poll interval.
    fn wait(&mut self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async move {
            match self.open.take() {
                Some(OpenSession {
                    session,
                    idle: true,
                }) => {
                    let session = self.idle(session).await?;
                    self.open = Some(OpenSession {
                        session,
                        idle: true,
                    });
                }
                open => {
                    self.open = open;
                    let mut shutdown = self.cx.shutdown.clone();
                    shutdown.sleep(self.spec.poll_interval).await;
                }
            }
            Ok(())
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(open) = self.open.take() {
                logout(open.session).await;
            }
        })
    }
}

/// `rapport connectors test`: connects, logs in and selects the mailbox, and describes
/// what it found in one paragraph. Reads nothing into Rapport and marks nothing as read.
pub async fn test(spec: &ImapSpec) -> Result<String, ImapError> {
    let Connected {
        mut session,
        greeting,
        capabilities,
    } = open(spec).await?;
    let mailbox = select(&mut session, spec).await?;
    let newest = if mailbox.exists > 0 {
        newest_message(&mut session, spec, mailbox.exists).await?
    } else {
        None
    };
    logout(session).await;

    let security = match spec.security {
        ImapSecurity::Tls => "implicit TLS",
        ImapSecurity::StartTls => "STARTTLS",
        ImapSecurity::Plain => "a plain, unencrypted connection",
    };
    let mut names: Vec<String> = capabilities.iter().map(capability_name).collect();
    names.sort();
    let idle = if has_capability(&capabilities, "IDLE") {
        match spec.mode {
            ImapMode::Idle => "IDLE is supported, so new mail is pushed".to_string(),
            ImapMode::Poll => format!(
                "IDLE is supported, but mode = poll checks every {} s",
                spec.poll_interval.as_secs()
            ),
        }
    } else {
        format!(
            "IDLE is not supported, so Rapport polls every {} s",
            spec.poll_interval.as_secs()
        )
    };
    let greeting = if greeting.is_empty() {
        String::new()
    } else {
        format!(" (\"{greeting}\")")
    };
    let uidnext = mailbox
        .uid_next
        .map(|n| format!(", next UID {n}"))
        .unwrap_or_default();
    let newest = match newest {
        Some(m) => format!(
            " The newest message is UID {}: \"{}\" from {}.",
            m.uid, m.subject, m.from
        ),
        None => " The mailbox is empty.".to_string(),
    };
    Ok(format!(
        "Connected to {}:{} over {security}{greeting} and logged in as {}. \
         Capabilities: {}; {idle}. Mailbox {:?}: UIDVALIDITY {}, {} messages (EXISTS){uidnext}.{newest}",
        spec.host,
        spec.port,
        spec.username,
        names.join(" "),
        spec.mailbox,
        mailbox
            .uid_validity
            .map_or_else(|| "unknown".to_string(), |v| v.to_string()),
        mailbox.exists,
    ))
}

struct Newest {
    uid: u32,
    subject: String,
    from: String,
}

/// Subject and From of the message with sequence number `seq`: decoded by the e-mail
/// parser when the message is small enough, else as the server's ENVELOPE has them.
async fn newest_message(
    session: &mut ImapSession,
    spec: &ImapSpec,
    seq: u32,
) -> Result<Option<Newest>, ImapError> {
    let fetch_error = |message: String| ImapError::Fetch {
        mailbox: spec.mailbox.clone(),
        host: spec.host.clone(),
        message,
    };
    let fetches: Vec<Fetch> = session
        .fetch(seq.to_string(), "(UID RFC822.SIZE ENVELOPE)")
        .await
        .map_err(|e| fetch_error(e.to_string()))?
        .try_collect()
        .await
        .map_err(|e| fetch_error(e.to_string()))?;
    let Some(fetch) = fetches.iter().find(|f| f.uid.is_some()) else {
        return Ok(None);
    };
    let uid = fetch.uid.unwrap_or_default();
    let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let envelope = fetch.envelope();
    let mut newest = Newest {
        uid,
        subject: envelope
            .and_then(|e| e.subject.as_deref())
            .map(lossy)
            .unwrap_or_default(),
        from: envelope
            .and_then(|e| e.from.as_ref())
            .and_then(|from| from.first())
            .map(|a| {
                let address = format!(
                    "{}@{}",
                    a.mailbox.as_deref().map(lossy).unwrap_or_default(),
                    a.host.as_deref().map(lossy).unwrap_or_default()
                );
                match a.name.as_deref().map(lossy) {
                    Some(name) => format!("{name} <{address}>"),
                    None => address,
                }
            })
            .unwrap_or_else(|| "(no From)".into()),
    };
    let ctx = rapport_connectors::ParseContext::new(
        "test",
        format!("imap://{}/{}", spec.host, spec.mailbox),
    );
    if fetch
        .size
        .is_some_and(|size| size as usize <= ctx.max_file_bytes)
    {
        let bodies: Vec<Fetch> = session
            .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
            .await
            .map_err(|e| fetch_error(e.to_string()))?
            .try_collect()
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        let parsed = bodies
            .iter()
            .find_map(|f| f.body())
            .and_then(|body| rapport_connectors::email::parse_eml(body, &ctx).ok())
            .and_then(|interactions| interactions.into_iter().next());
        if let Some(interaction) = parsed {
            if let Some(subject) = interaction
                .attributes
                .get("subject")
                .and_then(|v| v.as_str())
            {
                newest.subject = subject.to_string();
            }
            let address = interaction
                .author
                .ids
                .iter()
                .find_map(|id| id.strip_prefix("email:"))
                .map(str::to_string);
            newest.from = match (interaction.author.name, address) {
                (Some(name), Some(address)) => format!("{name} <{address}>"),
                (None, Some(address)) => address,
                _ => newest.from,
            };
        }
    }
    Ok(Some(newest))
}

type ImapSession = Session<Transport>;

struct Connected {
    session: ImapSession,
    /// The server's greeting text, e.g. "Dovecot ready."
    greeting: String,
    capabilities: Capabilities,
}

/// Connects (TLS as configured), logs in and reads the capabilities.
async fn open(spec: &ImapSpec) -> Result<Connected, ImapError> {
    let addr = format!("{}:{}", spec.host, spec.port);
    let connect_error = |message: String| ImapError::Connect {
        addr: addr.clone(),
        message,
    };
    let tls = match spec.security {
        ImapSecurity::Plain => None,
        ImapSecurity::Tls | ImapSecurity::StartTls => Some(tls_connector(spec)?),
    };
    let tcp = timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((spec.host.as_str(), spec.port)),
    )
    .await
    .map_err(|_| connect_error(no_answer()))?
    .map_err(|e| connect_error(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let transport = match (&tls, spec.security) {
        (Some(tls), ImapSecurity::Tls) => {
            Transport::Tls(Box::new(handshake(spec, tls, tcp).await?))
        }
        _ => Transport::Plain(tcp),
    };
    let mut client = Client::new(transport);
    let greeting = read_greeting(&mut client).await.map_err(connect_error)?;
    if let (Some(tls), ImapSecurity::StartTls) = (&tls, spec.security) {
        timeout(
            COMMAND_TIMEOUT,
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await
        .map_err(|_| connect_error(no_answer()))?
        .map_err(|e| ImapError::Tls {
            host: spec.host.clone(),
            message: format!("STARTTLS refused: {e}"),
        })?;
        let Transport::Plain(tcp) = client.into_inner() else {
            unreachable!("STARTTLS runs on a plain connection")
        };
        client = Client::new(Transport::Tls(Box::new(handshake(spec, tls, tcp).await?)));
    }
    let login_error = |message: String| ImapError::Login {
        user: spec.username.clone(),
        host: addr.clone(),
        message: hide(&message, spec.password.expose()),
    };
    let mut session = timeout(
        COMMAND_TIMEOUT,
        client.login(&spec.username, spec.password.expose()),
    )
    .await
    .map_err(|_| login_error(no_answer()))?
    .map_err(|(e, _)| login_error(e.to_string()))?;
    let capabilities = timeout(COMMAND_TIMEOUT, session.capabilities())
        .await
        .map_err(|_| connect_error(no_answer()))?
        .map_err(|e| connect_error(format!("CAPABILITY failed: {e}")))?;
    Ok(Connected {
        session,
        greeting,
        capabilities,
    })
}

/// The server speaks first: `* OK …` (or `* BYE …` when it refuses us).
async fn read_greeting(client: &mut Client<Transport>) -> Result<String, String> {
    let response = timeout(COMMAND_TIMEOUT, client.read_response())
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| format!("reading the greeting: {e}"))?
        .ok_or_else(|| "the server closed the connection before greeting".to_string())?;
    match response.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            information,
            ..
        } => Ok(information.as_deref().unwrap_or("").trim().to_string()),
        Response::Data { information, .. } => Err(format!(
            "the server refused the connection: {}",
            information.as_deref().unwrap_or("")
        )),
        other => Err(format!("unexpected greeting: {other:?}")),
    }
}

async fn select(session: &mut ImapSession, spec: &ImapSpec) -> Result<Mailbox, ImapError> {
    let select_error = |message: String| ImapError::Select {
        mailbox: spec.mailbox.clone(),
        host: spec.host.clone(),
        message,
    };
    timeout(COMMAND_TIMEOUT, session.select(mailbox_name(&spec.mailbox)))
        .await
        .map_err(|_| select_error(no_answer()))?
        .map_err(|e| select_error(e.to_string()))
}

async fn logout(mut session: ImapSession) {
    let _ = timeout(Duration::from_secs(5), session.logout()).await;
}

fn tls_connector(spec: &ImapSpec) -> Result<TlsConnector, ImapError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut pinned = Vec::new();
    if let Some(path) = &spec.ca_file {
        let ca_error = |message: String| ImapError::CaFile {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ca_error(format!("bad PEM: {e}")))?;
            roots
                .add(cert.clone())
                .map_err(|e| ca_error(format!("unusable certificate: {e}")))?;
            pinned.push(cert);
        }
        if pinned.is_empty() {
            return Err(ca_error(
                "no PEM certificate (BEGIN CERTIFICATE) in it".into(),
            ));
        }
    }
    let tls_error = |message: String| ImapError::Tls {
        host: spec.host.clone(),
        message,
    };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls_error(e.to_string()))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedOrWebPki { webpki, pinned }))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Chains to the web roots or to a certificate of `ca_file`, checked by webpki, as usual;
/// and a server certificate that is itself in `ca_file` is trusted as pinned. The latter is
/// the self-signed certificate of many on-premises mail servers: `openssl req -x509` marks
/// it as a CA, which webpki refuses as a server certificate (`CaUsedAsEndEntity`). The
/// handshake signatures are checked either way, so the server must hold its private key.
#[derive(Debug)]
struct PinnedOrWebPki {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

async fn handshake(
    spec: &ImapSpec,
    tls: &TlsConnector,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, ImapError> {
    let tls_error = |message: String| ImapError::Tls {
        host: spec.host.clone(),
        message,
    };
    let name = ServerName::try_from(spec.host.clone())
        .map_err(|e| tls_error(format!("{:?} is not a valid server name: {e}", spec.host)))?;
    timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
        .await
        .map_err(|_| tls_error(no_answer()))?
        .map_err(|e| tls_error(e.to_string()))
}

/// The connection under the IMAP session: plain TCP or TLS over TCP.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn has_capability(capabilities: &Capabilities, name: &str) -> bool {
    capabilities
        .iter()
        .any(|c| capability_name(c).eq_ignore_ascii_case(name))
}

fn capability_name(capability: &Capability) -> String {
    match capability {
        Capability::Imap4rev1 => "IMAP4rev1".to_string(),
        Capability::Auth(mechanism) => format!("AUTH={mechanism}"),
        Capability::Atom(atom) => atom.clone(),
    }
}

/// Mailbox names travel in modified UTF-7 (RFC 3501 §5.1.3). A name with non-ASCII
/// characters ("Kundeservice/Klager på levering") is encoded; an ASCII name is sent as
/// configured, so names already written in modified UTF-7 keep working.
fn mailbox_name(name: &str) -> String {
    if name.is_ascii() {
        return name.to_string();
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let digits = chunk.len() + 1;
            for i in 0..digits {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Never let a password reach a log line or an error message, whatever a server echoes.
fn hide(message: &str, password: &str) -> String {
    if password.is_empty() {
        message.to_string()
    } else {
        message.replace(password, "***")
    }
}

fn no_answer() -> String {
    "no answer (timed out)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_names_are_modified_utf7() {
        assert_eq!(mailbox_name("INBOX"), "INBOX");
        assert_eq!(mailbox_name("Kunder & Co"), "Kunder & Co");
        // RFC 3501's own example, and Danish/Norwegian letters.
        assert_eq!(
            mailbox_name("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(mailbox_name("Klager på levering"), "Klager p&AOU- levering");
        assert_eq!(
            mailbox_name("Kundeservice/Ærø & Bø"),
            "Kundeservice/&AMY-r&APg- &- B&APg-"
        );
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(hide("NO bad pass hemmelig", "hemmelig"), "NO bad pass ***");
        assert_eq!(hide("NO", ""), "NO");
    }
}

//! The IMAP connector against a real Dovecot and a real nats-server, both started per test.
//! Without `/usr/sbin/dovecot` (Debian: dovecot-imapd) each test prints `SKIP: …` and passes.

mod support;

use std::time::Duration;

use rapport_config::{ImapMode, ImapSecurity, ImapSpec, Secret};
use rapport_connectors::{ParseContext, Role};
use rapport_pipeline::bus::{DLQ_STREAM, INTERACTIONS_STREAM};
use rapport_pipeline::lifecycle::Shutdown;
use rapport_pipeline::sources::imap::{self, ImapCheckpoint, ImapError, ImapReader};
use rapport_pipeline::sources::{self, Sink, SourceContext};
use rapport_pipeline::{Bus, Checkpoints, dlq};
use std::sync::atomic::Ordering;
use support::NatsServer;
use support::dovecot::{self, Dovecot};

const CONNECTOR: &str = "kundeservice-mail";
const MAX_RAW: usize = 1 << 20;
/// Generous bound for push delivery; the IDLE test normally passes in well under a second.
const PUSH_WAIT: Duration = Duration::from_secs(30);

fn template() -> ParseContext {
    let mut template = ParseContext::new(CONNECTOR, "");
    template.company_domains = vec!["elektrohuset.dk".into()];
    template
}

fn connector_state(bus: &Bus) -> SourceContext {
    SourceContext::new(template(), Some(Checkpoints::new(bus.checkpoints.clone())))
}

fn reader(cx: SourceContext, spec: ImapSpec) -> ImapReader {
    ImapReader::new(cx, spec)
}

/// One customer e-mail with CRLF line ends.
fn mail(
    id: &str,
    minute: u32,
    from: &str,
    subject: &str,
    extra_headers: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "Message-ID: <{id}@mail.test>\r\n\
         Date: Mon, 3 Mar 2025 09:{minute:02}:00 +0100\r\n\
         From: {from}\r\n\
         To: Elektrohuset Kundeservice <kundeservice@elektrohuset.dk>\r\n\
         Subject: {subject}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         {extra_headers}\r\n\
         {}",
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

/// Danish and Norwegian customer mail (and one agent reply), oldest first.
fn customer_mails() -> Vec<Vec<u8>> {
    vec![
        mail(
            "ordre-48213-1",
            1,
            "=?utf-8?q?Mette_S=C3=B8rensen?= <mette.sorensen@gmail.com>",
            "Forsinket levering af ordre 48213",
            "",
            "Hej\n\nJeg bestilte en opvaskemaskine for tre uger siden, og den er stadig ikke \
             kommet. I lovede levering inden for fem hverdage. Hvad sker der?\n\nMvh\nMette\n",
        ),
        mail(
            "faktura-mars-1",
            2,
            "Ola Nordmann <ola.nordmann@online.no>",
            "=?utf-8?q?Feil_p=C3=A5_fakturaen_for_mars?=",
            "Content-Language: nb\r\n",
            "Hei,\n\nFakturaen for mars er belastet to ganger på kortet mitt. Jeg ønsker \
             pengene tilbake så snart som mulig.\n\nHilsen Ola\n",
        ),
        mail(
            "ordre-48213-2",
            3,
            "Jonas fra Elektrohuset <jonas@elektrohuset.dk>",
            "Re: Forsinket levering af ordre 48213",
            "In-Reply-To: <ordre-48213-1@mail.test>\r\nReferences: <ordre-48213-1@mail.test>\r\n",
            "Hej Mette\n\nUndskyld ventetiden. Din opvaskemaskine bliver leveret på torsdag \
             mellem kl. 8 og 12.\n\nVenlig hilsen\nJonas\n\n> Jeg bestilte en opvaskemaskine \
             for tre uger siden\n",
        ),
        mail(
            "retur-1",
            4,
            "Kari Hansen <kari.hansen@yahoo.no>",
            "Takk for rask hjelp!",
            "",
            "Hei!\n\nTusen takk for rask hjelp med returen av støvsugeren. Dere er \
             fantastiske, jeg anbefaler dere til alle jeg kjenner.\n\nKari\n",
        ),
        mail(
            "opsigelse-1",
            5,
            "=?utf-8?q?Lars_J=C3=B8rgensen?= <lars.j@hotmail.dk>",
            "Opsigelse af abonnement",
            "",
            "Jeg har nu ringet tre gange uden at få svar. Hvis jeg ikke hører fra jer i dag, \
             opsiger jeg mit abonnement og skriver en anmeldelse på Trustpilot.\n",
        ),
    ]
}

#[tokio::test]
async fn plain_connection_reads_each_message_once() {
    let Some(dovecot) = Dovecot::start("plain_connection_reads_each_message_once") else {
        return;
    };
    let mut nats = NatsServer::start().await;
    let bus = support::bus(&nats.url()).await;
    let mut sink = Sink::bus(&bus, MAX_RAW);
    let mails = customer_mails();
    for m in &mails[..3] {
        dovecot.deliver(m);
    }
    let spec = dovecot.spec(ImapSecurity::Plain);
    let state = connector_state(&bus);
    let mut first = reader(state.clone(), spec.clone());
    assert_eq!(first.fetch_new(&mut sink).await.expect("first pass"), 3);
    assert_eq!(support::interactions(&bus).await, 3);

    // The cursor: only the two new messages are read.
    for m in &mails[3..] {
        dovecot.deliver(m);
    }
    assert_eq!(first.fetch_new(&mut sink).await.expect("second pass"), 2);
    assert_eq!(support::interactions(&bus).await, 5);
    assert_eq!(first.fetch_new(&mut sink).await.expect("idle pass"), 0);
    let counters = &state.counters;
    assert_eq!(counters.published.load(Ordering::Relaxed), 5);
    assert_eq!(counters.read.load(Ordering::Relaxed), 5);

    // A restart (of nats-server, and of the connector) resumes from the checkpoint in the
    // KV bucket.
    nats.restart().await;
    support::wait_for_jetstream(&bus, Duration::from_secs(30)).await;
    let key = Checkpoints::key(
        CONNECTOR,
        &format!("imap:{}@127.0.0.1/INBOX", dovecot::USER),
    );
    let checkpoint: ImapCheckpoint = Checkpoints::new(bus.checkpoints.clone())
        .get(&key)
        .await
        .expect("read checkpoint")
        .expect("checkpoint written");
    assert_eq!(checkpoint.last_uid, 5);
    assert_ne!(checkpoint.uidvalidity, 0);
    let mut restarted = reader(state.clone(), spec.clone());
    assert_eq!(
        restarted.fetch_new(&mut sink).await.expect("after restart"),
        0
    );

    // Without a checkpoint everything is read again and JetStream drops the duplicates:
    // what a changed UIDVALIDITY leads to.
    let forgetful = SourceContext {
        checkpoints: None,
        ..connector_state(&bus)
    };
    let mut again = reader(forgetful.clone(), spec);
    assert_eq!(again.fetch_new(&mut sink).await.expect("re-read"), 5);
    assert_eq!(support::interactions(&bus).await, 5);
    assert_eq!(forgetful.counters.duplicates.load(Ordering::Relaxed), 5);

    // The records: Message-ID based ids, decoded headers, roles from company_domains.
    let stream = bus
        .jetstream
        .get_stream(INTERACTIONS_STREAM)
        .await
        .expect("stream");
    let mut records = Vec::new();
    for seq in 1..=5 {
        let message = stream.get_raw_message(seq).await.expect("stored message");
        let record: serde_json::Value = serde_json::from_slice(&message.payload).expect("JSON");
        records.push(record);
    }
    let first_record = &records[0];
    assert_eq!(first_record["id"], "email:ordre-48213-1@mail.test");
    assert_eq!(first_record["connector"], CONNECTOR);
    assert_eq!(first_record["channel"], "email");
    assert_eq!(
        first_record["attributes"]["subject"],
        "Forsinket levering af ordre 48213"
    );
    assert_eq!(first_record["author"]["name"], "Mette Sørensen");
    assert_eq!(
        first_record["author"]["role"],
        serde_json::to_value(Role::Customer).unwrap()
    );
    assert!(
        first_record["text"]
            .as_str()
            .unwrap()
            .contains("opvaskemaskine"),
        "{first_record}"
    );
    assert_eq!(
        records[1]["attributes"]["subject"],
        "Feil på fakturaen for mars"
    );
    assert_eq!(
        records[2]["author"]["role"],
        serde_json::to_value(Role::Agent).unwrap()
    );
    assert_eq!(records[2]["in_reply_to"], "email:ordre-48213-1@mail.test");
    assert!(
        !records[2]["text"]
            .as_str()
            .unwrap()
            .contains("> Jeg bestilte")
    );

    // BODY.PEEK: Rapport never marks customer mail as read (\Seen is the S in ":2,S").
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(dovecot.maildir().join(sub)).expect("read Maildir") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            let flags = name.split_once(":2,").map_or("", |(_, f)| f);
            assert!(!flags.contains('S'), "{name} was marked \\Seen");
        }
    }
}

#[tokio::test]
async fn implicit_tls_and_starttls_with_ca_file_and_clear_errors() {
    let Some(dovecot) = Dovecot::start("implicit_tls_and_starttls_with_ca_file_and_clear_errors")
    else {
        return;
    };
    let nats = NatsServer::start().await;
    let bus = support::bus(&nats.url()).await;
    let mut sink = Sink::bus(&bus, MAX_RAW);
    let mails = customer_mails();
    dovecot.deliver(&mails[0]);
    dovecot.deliver(&mails[1]);

    let tls = dovecot.spec(ImapSecurity::Tls);
    assert_eq!(tls.host, "localhost");
    let mut over_tls = reader(connector_state(&bus), tls.clone());
    assert_eq!(
        over_tls.fetch_new(&mut sink).await.expect("fetch over TLS"),
        2
    );
    assert_eq!(support::interactions(&bus).await, 2);

    // `rapport connectors test`: one paragraph on what the connector would see.
    let summary = imap::test(&tls).await.expect("connector test over TLS");
    eprintln!("connectors test: {summary}");
    for expected in [
        "localhost",
        "implicit TLS",
        "IDLE",
        "UIDVALIDITY",
        "2 messages (EXISTS)",
        "\"INBOX\"",
        "Feil på fakturaen for mars",
        "Ola Nordmann <ola.nordmann@online.no>",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} missing in: {summary}"
        );
    }
    assert!(!summary.contains(dovecot::PASSWORD));

    let starttls = dovecot.spec(ImapSecurity::StartTls);
    let summary = imap::test(&starttls)
        .await
        .expect("connector test with STARTTLS");
    assert!(summary.contains("STARTTLS"), "{summary}");
    // Another host name is another cursor (the key names user, host and mailbox): the
    // messages are read again and JetStream drops them as duplicates.
    let starttls_state = connector_state(&bus);
    let mut over_starttls = reader(starttls_state.clone(), starttls);
    assert_eq!(
        over_starttls
            .fetch_new(&mut sink)
            .await
            .expect("STARTTLS fetch"),
        2
    );
    assert_eq!(support::interactions(&bus).await, 2);
    assert_eq!(
        starttls_state.counters.duplicates.load(Ordering::Relaxed),
        2
    );

    // The self-signed certificate is not trusted without ca_file.
    let untrusted = ImapSpec {
        ca_file: None,
        ..tls.clone()
    };
    match imap::test(&untrusted).await {
        Err(e @ ImapError::Tls { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("localhost") && text.to_lowercase().contains("certificate"),
                "{text}"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // A wrong password: a login error naming user and server, never the password.
    let wrong = "Forkert-Kodeord-1234";
    let bad_login = ImapSpec {
        password: Secret::new(wrong),
        ..tls
    };
    let mut reader_with_bad_login = reader(connector_state(&bus), bad_login.clone());
    for result in [
        imap::test(&bad_login).await.map(|_| 0),
        reader_with_bad_login.fetch_new(&mut sink).await,
    ] {
        match result {
            Err(e @ ImapError::Login { .. }) => {
                let text = e.to_string();
                assert!(text.contains(dovecot::USER), "{text}");
                assert!(
                    text.contains(&format!("localhost:{}", dovecot.imaps_port)),
                    "{text}"
                );
                assert!(!text.contains(wrong), "{text}");
                assert!(!format!("{e:?}").contains(wrong), "{e:?}");
            }
            other => panic!("expected a login error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn idle_pushes_new_mail_and_shutdown_ends_run() {
    let Some(dovecot) = Dovecot::start("idle_pushes_new_mail_and_shutdown_ends_run") else {
        return;
    };
    let nats = NatsServer::start().await;
    let bus = support::bus(&nats.url()).await;
    let mails = customer_mails();
    dovecot.deliver(&mails[0]);

    // Polling once an hour: anything that arrives within the test came by IDLE.
    let spec = ImapSpec {
        mode: ImapMode::Idle,
        poll_interval: Duration::from_secs(3600),
        ..dovecot.spec(ImapSecurity::Plain)
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let state = connector_state(&bus).with_shutdown(Shutdown::new(shutdown));
    let mut idle_reader = reader(state.clone(), spec);
    let mut sink = Sink::bus(&bus, MAX_RAW);
    let running = tokio::spawn(async move { sources::run(&mut idle_reader, &mut sink).await });

    let count = support::wait_for_count(&bus, INTERACTIONS_STREAM, 1, PUSH_WAIT).await;
    assert_eq!(count, 1, "the mail already there was not read");
    for (i, m) in mails[1..4].iter().enumerate() {
        dovecot.deliver(m);
        let want = 2 + i as u64;
        let count = support::wait_for_count(&bus, INTERACTIONS_STREAM, want, PUSH_WAIT).await;
        assert_eq!(
            count,
            want,
            "mail {want} was not pushed; dovecot:\n{}",
            dovecot.logs()
        );
    }

    // The server drops the IDLE connection: run() records it, reconnects (after its
    // back-off) and reads on.
    dovecot.kick();
    dovecot.deliver(&mails[4]);
    let count = support::wait_for_count(&bus, INTERACTIONS_STREAM, 5, PUSH_WAIT).await;
    assert_eq!(
        count,
        5,
        "no reconnect after a server restart; dovecot:\n{}",
        dovecot.logs()
    );

    stop.send(true).expect("reader alive");
    let ended = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("run() did not end on shutdown")
        .expect("run() panicked");
    ended.expect("run() ended with an error");
    assert_eq!(state.counters.published.load(Ordering::Relaxed), 5);
    let status = state.counters.snapshot(CONNECTOR, "imap");
    assert!(
        status.last_error.is_some(),
        "the lost connection was not recorded"
    );
    assert!(!status.last_error.unwrap().contains(dovecot::PASSWORD));
}

#[tokio::test]
async fn malformed_message_goes_to_the_dead_letter_queue() {
    let Some(dovecot) = Dovecot::start("malformed_message_goes_to_the_dead_letter_queue") else {
        return;
    };
    let nats = NatsServer::start().await;
    let bus = support::bus(&nats.url()).await;
    let mut sink = Sink::bus(&bus, MAX_RAW);
    let mails = customer_mails();
    let garbage: &[u8] =
        b"Dette er ikke en e-mail, bare en halv linje fra en printer \x01\x02\xff\r\n";
    dovecot.deliver(&mails[0]);
    dovecot.deliver(garbage);
    dovecot.deliver(&mails[1]);

    let state = connector_state(&bus);
    let mut imap_reader = reader(state.clone(), dovecot.spec(ImapSecurity::Plain));
    assert_eq!(imap_reader.fetch_new(&mut sink).await.expect("pass"), 2);
    assert_eq!(support::interactions(&bus).await, 2);
    assert_eq!(support::dead_letters(&bus).await, 1);
    assert_eq!(state.counters.failed.load(Ordering::Relaxed), 1);

    let letter = bus
        .jetstream
        .get_stream(DLQ_STREAM)
        .await
        .expect("DLQ stream")
        .get_last_raw_message_by_subject("rapport.dlq.ingest")
        .await
        .expect("dead letter on rapport.dlq.ingest");
    let header = |name: &str| {
        letter
            .headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| panic!("header {name} missing"))
    };
    assert!(
        header(dlq::REASON).contains("not an e-mail"),
        "{}",
        header(dlq::REASON)
    );
    assert_eq!(header(dlq::STAGE), "ingest");
    assert_eq!(header(dlq::CONNECTOR), CONNECTOR);
    assert_eq!(
        header(dlq::SOURCE),
        format!("imap://{}@127.0.0.1/INBOX;UID=2", dovecot::USER)
    );
    assert_eq!(&letter.payload[..], garbage);

    // The cursor moved past the bad message: nothing is read or dead-lettered twice.
    assert_eq!(
        imap_reader.fetch_new(&mut sink).await.expect("next pass"),
        0
    );
    dovecot.deliver(&mails[4]);
    assert_eq!(
        imap_reader.fetch_new(&mut sink).await.expect("later pass"),
        1
    );
    assert_eq!(support::interactions(&bus).await, 3);
    assert_eq!(support::dead_letters(&bus).await, 1);
}

#[tokio::test]
async fn run_backs_off_on_connection_errors_and_stops_on_shutdown() {
    // Nothing listens on this port: every attempt fails, is recorded, and is retried.
    let spec = ImapSpec {
        host: "127.0.0.1".into(),
        port: support::free_port(),
        security: ImapSecurity::Plain,
        username: dovecot::USER.into(),
        password: Secret::new(dovecot::PASSWORD),
        mailbox: "INBOX".into(),
        mode: ImapMode::Idle,
        poll_interval: Duration::from_secs(60),
        ca_file: None,
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let state = SourceContext::new(template(), None).with_shutdown(Shutdown::new(shutdown));
    let mut unreachable = reader(state.clone(), spec.clone());
    let running = tokio::spawn(async move {
        let mut sink = Sink::Print {
            json: false,
            printed: 0,
        };
        sources::run(&mut unreachable, &mut sink).await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        if let Some(error) = state.counters.snapshot(CONNECTOR, "imap").last_error {
            break error;
        }
        assert!(tokio::time::Instant::now() < deadline, "no error recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        error.contains(&format!("127.0.0.1:{}", spec.port)),
        "the error names the server: {error}"
    );
    stop.send(true).expect("reader alive");
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("run() did not stop during its back-off")
        .expect("run() panicked")
        .expect("run() ended with an error");
}

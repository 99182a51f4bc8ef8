//! Parser throughput per format: `cargo bench --bench parse`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rapport_connectors::{Format, ParseContext};
use std::hint::black_box;

#[path = "../tests/support/samples.rs"]
mod samples;

const N: usize = 10_000;

fn mbox() -> Vec<u8> {
    let mut out = String::new();
    for i in 0..N / 10 {
        out.push_str(&format!(
            "From kunde{i}@example.com Mon Mar  4 10:00:00 2024\nFrom: Kunde {i} <kunde{i}@example.com>\nTo: support@example-shop.dk\nSubject: Ordre {i}\nDate: Mon, 4 Mar 2024 10:00:00 +0100\nMessage-ID: <m{i}@example.com>\n\nHej, min ordre {i} er ikke kommet. Kan I hjælpe?\n\nDen 3. mar. 2024 skrev Support:\n> Tak for din henvendelse.\n\n"
        ));
    }
    out.into_bytes()
}

fn vtt() -> Vec<u8> {
    let mut out = String::from("WEBVTT\n\n");
    for i in 0..N / 10 {
        let who = if i % 2 == 0 { "Kunde" } else { "Agent" };
        out.push_str(&format!(
            "{i}\n00:{:02}:{:02}.000 --> 00:{:02}:{:02}.500\n<v {who}>Jeg har fått feil regning for mars, nummer {i}.\n\n",
            i / 60 % 60, i % 60, i / 60 % 60, i % 60
        ));
    }
    out.into_bytes()
}

fn bench_formats(c: &mut Criterion) {
    let mut ctx = ParseContext::new("bench", "bench");
    ctx.company_domains = vec!["example-shop.dk".into()];
    ctx.max_message_bytes = 64 << 20;
    let inputs = [
        (
            "chat-ndjson",
            Format::ChatJson,
            samples::chat_ndjson("c", 0..N).into_bytes(),
            N,
        ),
        (
            "twcs-csv",
            Format::TwcsCsv,
            samples::twcs_csv(N).into_bytes(),
            N,
        ),
        ("mbox", Format::Mbox, mbox(), N / 10),
        ("vtt", Format::Vtt, vtt(), N / 10),
    ];
    let mut group = c.benchmark_group("parse");
    for (name, format, input, units) in &inputs {
        group.throughput(Throughput::Elements(*units as u64));
        group.bench_function(*name, |b| {
            b.iter(|| black_box(format.parse(black_box(input), &ctx)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_formats);
criterion_main!(benches);

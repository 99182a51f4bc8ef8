//! `rapport models export`: an imported model as a Hugging Face BERT directory (F32
//! `model.safetensors`, `config.json`, `tokenizer.json`) plus the sentence-transformers
//! files for mean pooling and normalisation, so PyTorch can compute reference vectors
//! and baseline timings from exactly the weights Rapport runs.

use std::path::Path;

use candle_core::Device;

use crate::catalogue::ModelSpec;
use crate::encoder::ModelError;
use crate::weights::Weights;

/// Writes the export into `out`; returns the file names written.
pub fn safetensors(
    spec: &'static ModelSpec,
    models_dir: &Path,
    out: &Path,
) -> Result<Vec<String>, ModelError> {
    let dir = models_dir.join(spec.name);
    let weights = Weights::imported(spec, models_dir)?;
    let write_error = |path: &Path, e: &dyn std::fmt::Display| ModelError::File {
        path: path.to_path_buf(),
        problem: format!("cannot write: {e}"),
    };
    std::fs::create_dir_all(out.join("1_Pooling")).map_err(|e| write_error(out, &e))?;

    let tensors = weights.to_tensors(&Device::Cpu)?;
    let model_path = out.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &model_path)
        .map_err(|e| write_error(&model_path, &e))?;

    let read_json = |name: &str| -> Result<serde_json::Value, ModelError> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| ModelError::File {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ModelError::File {
            path,
            problem: format!("not JSON: {e}"),
        })
    };
    let config = read_json("config.json")?;
    let mut tokenizer = read_json("tokenizer.json")?;
    // Rapport pads per batch (or not at all); a fixed pad length would change timings.
    tokenizer["padding"] = serde_json::Value::Null;
    let has_added_token = |token: &str| {
        tokenizer["added_tokens"]
            .as_array()
            .is_some_and(|added| added.iter().any(|t| t["content"] == token))
    };
    let special = if has_added_token("<pad>") {
        serde_json::json!({"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>",
            "cls_token": "<s>", "sep_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask>"})
    } else {
        serde_json::json!({"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
            "unk_token": "[UNK]", "mask_token": "[MASK]"})
    };
    let mut tokenizer_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": spec.max_tokens,
    });
    if let (Some(target), Some(source)) = (tokenizer_config.as_object_mut(), special.as_object()) {
        target.extend(source.clone());
    }
    let mut sentence_transformers = serde_json::json!({});
    if !spec.prefix.is_empty() {
        sentence_transformers = serde_json::json!({
            "prompts": {"query": spec.prefix},
            "default_prompt_name": "query",
        });
    }
    let files: Vec<(&str, serde_json::Value)> = vec![
        ("config.json", config),
        ("tokenizer.json", tokenizer),
        ("tokenizer_config.json", tokenizer_config),
        (
            "modules.json",
            serde_json::json!([
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            ]),
        ),
        (
            "sentence_bert_config.json",
            serde_json::json!({"max_seq_length": spec.max_tokens, "do_lower_case": false}),
        ),
        ("config_sentence_transformers.json", sentence_transformers),
        (
            "1_Pooling/config.json",
            serde_json::json!({
                "word_embedding_dimension": spec.dims,
                "pooling_mode_cls_token": false,
                "pooling_mode_mean_tokens": true,
                "pooling_mode_max_tokens": false,
                "pooling_mode_mean_sqrt_len_tokens": false
            }),
        ),
    ];
    let mut written = vec!["model.safetensors".to_string()];
    for (name, value) in files {
        let path = out.join(name);
        let bytes = serde_json::to_vec_pretty(&value).expect("json");
        std::fs::write(&path, bytes).map_err(|e| write_error(&path, &e))?;
        written.push(name.to_string());
    }
    Ok(written)
}

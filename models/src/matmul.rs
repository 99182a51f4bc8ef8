//! How a dense layer multiplies (`models.matmul`): the kinds and their setting names.

/// How a dense layer multiplies: `models.matmul` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatmulKind {
    /// Weights expanded to f32; FMA GEMM. Matches the reference most closely.
    #[default]
    F32,
    /// Weights as 8-bit blocks, activations quantised per row to 8 bits; integer dots.
    Q8_0,
    /// Weights as the file's 4-bit blocks (no expansion at all for e5), 8-bit activations.
    Q4_0,
    /// Rapport's int8 GEMM (`igemm.rs`): 8-bit weights per output column, activations
    /// per row, 8-bit with AVX-512 VNNI, 7-bit on AVX2, smoothed by calibration. f32
    /// where AVX2 is missing.
    Int8,
}

impl MatmulKind {
    /// What `models.matmul` and `--matmul` accept: `auto` (the model's fastest kind that
    /// matches its references) or a kind.
    pub const SETTING_VALUES: [&'static str; 5] = ["auto", "f32", "int8", "q8_0", "q4_0"];

    pub const ALL: [MatmulKind; 4] = [
        MatmulKind::F32,
        MatmulKind::Int8,
        MatmulKind::Q8_0,
        MatmulKind::Q4_0,
    ];

    pub fn parse(name: &str) -> Option<MatmulKind> {
        match name {
            "f32" => Some(MatmulKind::F32),
            "q8_0" => Some(MatmulKind::Q8_0),
            "q4_0" => Some(MatmulKind::Q4_0),
            "int8" => Some(MatmulKind::Int8),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MatmulKind::F32 => "f32",
            MatmulKind::Q8_0 => "q8_0",
            MatmulKind::Q4_0 => "q4_0",
            MatmulKind::Int8 => "int8",
        }
    }
}

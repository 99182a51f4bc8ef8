//! The TOML data files beside `rapport.toml` (prototype signals, relationship types):
//! read from a configured path or built in, and parsed into problems that carry the file
//! and line, as `rapport config check` reports the main file.

use std::borrow::Cow;
use std::path::Path;

use crate::problem::{Origin, Problem, Problems};

/// `file`'s text and the name problems give it; `built_in` when no file is configured.
pub(crate) fn read(
    file: Option<&Path>,
    built_in: &'static str,
    built_in_name: &str,
    what: &str,
) -> Result<(Cow<'static, str>, String), Problems> {
    let Some(path) = file else {
        return Ok((Cow::Borrowed(built_in), built_in_name.to_string()));
    };
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((Cow::Owned(text), name)),
        Err(e) => Err(Problems(vec![Problem {
            path: String::new(),
            origin: Origin::File {
                file: name,
                line: None,
            },
            message: format!("cannot read {what}: {e}"),
        }])),
    }
}

/// A data file's text under its name.
pub(crate) struct DataFile<'a> {
    pub text: &'a str,
    pub file: &'a str,
}

impl DataFile<'_> {
    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    pub fn problem(&self, path: String, line: Option<usize>, message: String) -> Problem {
        Problem {
            path,
            origin: Origin::File {
                file: self.file.to_string(),
                line,
            },
            message,
        }
    }

    /// The file as `T`; a syntax or shape error is one problem at its line.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problems> {
        toml::from_str(self.text).map_err(|e| {
            Problems(vec![self.problem(
                String::new(),
                e.span().map(|s| self.line_of(s.start)),
                e.message().to_string(),
            )])
        })
    }
}

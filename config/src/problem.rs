//! A configuration problem: what is wrong, where (TOML path and line, or env variable).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted TOML path, e.g. `connectors.support-mail.port`; empty for the file itself.
    pub path: String,
    pub origin: Origin,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In the config file at this 1-based line (None where the key is absent from the file).
    File { file: String, line: Option<usize> },
    /// From this `RAPPORT_*` environment variable.
    Env(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File {
                file,
                line: Some(line),
            } => write!(f, "{file}:{line}: ")?,
            Origin::File { file, line: None } => write!(f, "{file}: ")?,
            Origin::Env(var) => write!(f, "env {var}: ")?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// All the problems found in one configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

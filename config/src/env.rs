//! `RAPPORT_*` environment overrides for every setting.
//!
//! The variable name is the setting's TOML path in upper case with `_` between parts:
//!
//! | setting | variable |
//! |---|---|
//! | `data_dir` | `RAPPORT_DATA_DIR` |
//! | `<section>.<key>` (`log`, `nats`, `ingest`, `api`, `models`) | `RAPPORT_<SECTION>_<KEY>`, e.g. `RAPPORT_NATS_URL`, `RAPPORT_API_TOKEN` |
//! | `connectors.<name>.<key>` | `RAPPORT_CONNECTORS_<NAME>_<KEY>`, name upper-cased with `-` as `_`, e.g. `RAPPORT_CONNECTORS_SUPPORT_MAIL_PASSWORD` |
//! | `alerts.<name>.<key>` | `RAPPORT_ALERTS_<NAME>_<KEY>`, e.g. `RAPPORT_ALERTS_SERVICE_RECIPIENTS` |
//!
//! Values are TOML literals where they parse as one (`true`, `8`, `["a.dk", "b.dk"]`) and
//! plain strings otherwise. Variables that are not settings are reported, so a typo such as
//! `RAPPORT_NATS_ULR` is caught instead of silently ignored; [`NOT_SETTINGS`] lists the few
//! `RAPPORT_*` variables that mean something else.

use crate::fields::fields_of;
use crate::problem::{Origin, Problem};
use crate::settings::{
    AlertRuleSettings, AnalysisSettings, ApiSettings, ConnectorSettings, FlagsSettings,
    IngestSettings, LogSettings, ModelsSettings, NatsSettings, PrivacySettings, ProfilesSettings,
    QdrantSettings, Settings, SmtpSettings,
};

/// The names of the configured entries of the tables keyed by name (`[connectors.<name>]`,
/// `[alerts.<name>]`): their keys can be overridden only once they are known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    pub connectors: Vec<String>,
    pub alerts: Vec<String>,
}

impl Names {
    /// The names in a parsed config file.
    pub fn of(table: &toml::Table) -> Names {
        let keys = |section: &str| -> Vec<String> {
            table
                .get(section)
                .and_then(toml::Value::as_table)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default()
        };
        Names {
            connectors: keys("connectors"),
            alerts: keys("alerts"),
        }
    }
}

/// `RAPPORT_*` variables read by other parts of Rapport, not settings.
pub const NOT_SETTINGS: &[&str] = &["RAPPORT_CONFIG", "RAPPORT_CORPUS"];

/// One variable mapped onto a settings path.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvOverride {
    pub var: String,
    pub path: Vec<String>,
    pub raw: String,
}

impl EnvOverride {
    /// The value as a TOML literal if it is one, else as a string.
    ///
    /// A value that reads as a TOML *string* literal stays exactly as written: a password
    /// `"abc"` keeps its quotes. Only numbers, booleans, arrays and tables are converted.
    pub fn value(&self) -> toml::Value {
        match literal(&self.raw) {
            Some(toml::Value::String(_)) | None => toml::Value::String(self.raw.clone()),
            Some(value) => value,
        }
    }
}

fn literal(raw: &str) -> Option<toml::Value> {
    let table: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
    table.get("v").cloned()
}

/// The variable name for a settings path, as documented above.
pub fn var_name(path: &[&str]) -> String {
    let mut name = String::from("RAPPORT");
    for part in path {
        name.push('_');
        name.push_str(&part.to_ascii_uppercase().replace(['-', '.'], "_"));
    }
    name
}

/// Every settings path that can be overridden, for the named entries as configured.
pub fn overridable_paths(names: &Names) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let sections: [(&str, &[&str]); 11] = [
        ("log", fields_of::<LogSettings>()),
        ("nats", fields_of::<NatsSettings>()),
        ("ingest", fields_of::<IngestSettings>()),
        ("api", fields_of::<ApiSettings>()),
        ("models", fields_of::<ModelsSettings>()),
        ("privacy", fields_of::<PrivacySettings>()),
        ("analysis", fields_of::<AnalysisSettings>()),
        ("profiles", fields_of::<ProfilesSettings>()),
        ("flags", fields_of::<FlagsSettings>()),
        ("qdrant", fields_of::<QdrantSettings>()),
        ("smtp", fields_of::<SmtpSettings>()),
    ];
    for field in fields_of::<Settings>() {
        if !matches!(
            *field,
            "log"
                | "nats"
                | "ingest"
                | "api"
                | "models"
                | "privacy"
                | "analysis"
                | "profiles"
                | "flags"
                | "qdrant"
                | "smtp"
                | "alerts"
                | "connectors"
        ) {
            paths.push(vec![field.to_string()]);
        }
    }
    for (section, fields) in sections {
        for field in fields {
            paths.push(vec![section.to_string(), field.to_string()]);
        }
    }
    for name in &names.connectors {
        for field in fields_of::<ConnectorSettings>() {
            paths.push(vec!["connectors".into(), name.clone(), field.to_string()]);
        }
    }
    for name in &names.alerts {
        for field in fields_of::<AlertRuleSettings>() {
            paths.push(vec!["alerts".into(), name.clone(), field.to_string()]);
        }
    }
    paths
}

/// Maps the `RAPPORT_*` variables in `vars` onto settings paths; unknown ones are problems.
pub fn resolve(
    vars: impl IntoIterator<Item = (String, String)>,
    names: &Names,
) -> (Vec<EnvOverride>, Vec<Problem>) {
    let paths = overridable_paths(names);
    let mut overrides = Vec::new();
    let mut problems = Vec::new();
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with("RAPPORT_") && !NOT_SETTINGS.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let mut found = paths.iter().filter(|path| {
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            var_name(&parts) == var
        });
        let (first, second) = (found.next(), found.next());
        if let (Some(a), Some(b)) = (first, second) {
            problems.push(Problem {
                path: String::new(),
                origin: Origin::Env(var.clone()),
                message: format!(
                    "ambiguous: it names both {} and {}; rename one so their names differ in more than '-' versus '_' or case",
                    a.join("."),
                    b.join(".")
                ),
            });
            continue;
        }
        match first {
            Some(path) => overrides.push(EnvOverride {
                var,
                path: path.clone(),
                raw,
            }),
            None => problems.push(Problem {
                path: String::new(),
                origin: Origin::Env(var.clone()),
                message: format!(
                    "not a Rapport setting (no settings path maps to {var}; see `rapport config env`)"
                ),
            }),
        }
    }
    (overrides, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_field_has_a_variable() {
        let paths = overridable_paths(&Names {
            connectors: vec!["support-mail".into()],
            alerts: vec!["service".into()],
        });
        let names: Vec<String> = paths
            .iter()
            .map(|p| var_name(&p.iter().map(String::as_str).collect::<Vec<_>>()))
            .collect();
        for expected in [
            "RAPPORT_DATA_DIR",
            "RAPPORT_NATS_URL",
            "RAPPORT_NATS_PUBLISH_WINDOW",
            "RAPPORT_API_TOKEN",
            "RAPPORT_LOG_FORMAT",
            "RAPPORT_INGEST_COMPANY_DOMAINS",
            "RAPPORT_CONNECTORS_SUPPORT_MAIL_PASSWORD",
            "RAPPORT_SMTP_PASSWORD",
            "RAPPORT_ALERTS_SERVICE_RECIPIENTS",
        ] {
            assert!(names.contains(&expected.to_string()), "{expected} missing");
        }
    }

    #[test]
    fn unknown_variables_are_problems_and_values_are_typed() {
        let (overrides, problems) = resolve(
            [
                ("RAPPORT_NATS_ULR".to_string(), "nats://x".to_string()),
                ("RAPPORT_NATS_PUBLISH_WINDOW".to_string(), "512".to_string()),
                ("RAPPORT_CORPUS".to_string(), "/c".to_string()),
                ("HOME".to_string(), "/root".to_string()),
            ],
            &Names::default(),
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("RAPPORT_NATS_ULR"));
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].value(), toml::Value::Integer(512));
    }

    #[test]
    fn quoted_strings_keep_their_quotes_and_ambiguous_names_are_problems() {
        let (overrides, problems) = resolve(
            [
                ("RAPPORT_API_TOKEN".to_string(), "\"s3cret\"".to_string()),
                ("RAPPORT_CONNECTORS_A_B_HOST".to_string(), "h".to_string()),
            ],
            &Names {
                connectors: vec!["a-b".into(), "a_b".into()],
                alerts: Vec::new(),
            },
        );
        assert_eq!(
            overrides[0].value(),
            toml::Value::String("\"s3cret\"".into())
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("ambiguous"), "{problems:?}");
    }
}

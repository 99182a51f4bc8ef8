//! Rapport's typed settings: `rapport.toml` plus `RAPPORT_*` env overrides, validated with
//! every problem reported by TOML path and line (`rapport config check`).

mod alerts;
pub mod connector;
mod data_file;
pub mod env;
mod fields;
pub mod load;
pub mod problem;
pub mod relationships;
pub mod settings;
pub mod signals;

pub use connector::{
    Connector, ConnectorSpec, ImapMode, ImapSecurity, ImapSpec, MastodonSpec, Secret,
};
pub use load::{Config, load, load_str, load_with_env};
pub use problem::{Origin, Problem, Problems};
pub use settings::{LogFormat, Settings};

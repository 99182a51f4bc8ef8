//! `relationship-types.toml`: the relationship types of Avery, Fournier & Wittenbraker
//! (HBR 2014), each a prototype point in the ten relationship dimensions with a
//! description and the treatment it calls for. The catalogue is data, so types can be
//! added without a release; a customer's profile is typed by the nearest prototype.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use rapport_domain::relationships::{DIMENSIONS, RelationshipCatalogue, RelationshipType};

use crate::data_file::{self, DataFile};
use crate::problem::Problems;

/// The catalogue shipped in `config/relationship-types.toml`.
pub const BUILT_IN: &str = include_str!("../relationship-types.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    name: String,
    description: String,
    treatment: String,
    prototype: BTreeMap<String, f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    types: BTreeMap<String, toml::Spanned<RawType>>,
}

/// `file` when given, else the built-in catalogue.
pub fn load(file: Option<&Path>) -> Result<RelationshipCatalogue, Problems> {
    let (text, name) = data_file::read(
        file,
        BUILT_IN,
        "<built-in relationship-types.toml>",
        "the relationship types",
    )?;
    parse(&text, &name)
}

/// Parses and validates a catalogue; every problem is reported, with its line.
pub fn parse(text: &str, file: &str) -> Result<RelationshipCatalogue, Problems> {
    let source = DataFile { text, file };
    let raw: RawFile = source.deserialize()?;
    let mut problems = Vec::new();
    let mut types = Vec::new();
    for (key, spanned) in raw.types {
        let line = Some(source.line_of(spanned.span().start));
        let raw = spanned.into_inner();
        let path = format!("types.{key}");
        for (field, value) in [
            ("name", &raw.name),
            ("description", &raw.description),
            ("treatment", &raw.treatment),
        ] {
            if value.trim().is_empty() {
                problems.push(source.problem(format!("{path}.{field}"), line, "is empty".into()));
            }
        }
        let mut prototype = [0.0f32; 10];
        for (at, dimension) in DIMENSIONS.iter().enumerate() {
            match raw.prototype.get(*dimension) {
                Some(&v) if (-1.0..=1.0).contains(&v) => prototype[at] = v,
                Some(&v) => problems.push(source.problem(
                    format!("{path}.prototype.{dimension}"),
                    line,
                    format!("{v} is outside [-1, 1]"),
                )),
                None => problems.push(source.problem(
                    format!("{path}.prototype.{dimension}"),
                    line,
                    "is missing; every type places itself on all ten dimensions".into(),
                )),
            }
        }
        for dimension in raw.prototype.keys() {
            if !DIMENSIONS.contains(&dimension.as_str()) {
                problems.push(source.problem(
                    format!("{path}.prototype.{dimension}"),
                    line,
                    format!("is not a dimension; expected {}", DIMENSIONS.join(", ")),
                ));
            }
        }
        types.push(RelationshipType {
            key,
            name: raw.name,
            description: raw.description,
            treatment: raw.treatment,
            prototype,
        });
    }
    if types.is_empty() && problems.is_empty() {
        problems.push(source.problem(
            "types".into(),
            None,
            "the catalogue has no relationship types".into(),
        ));
    }
    if problems.is_empty() {
        Ok(RelationshipCatalogue { types })
    } else {
        Err(Problems(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [&str; 11] = [
        "basic_exchange",
        "best_friends",
        "buddies",
        "fling",
        "master_slave",
        "business_partners",
        "ex_friends",
        "enemies",
        "love_hate",
        "one_night_stand",
        "marriage_partners",
    ];

    #[test]
    fn the_built_in_catalogue_has_the_studys_types_each_its_own_nearest() {
        let catalogue = load(None).unwrap();
        for key in REQUIRED {
            assert!(catalogue.get(key).is_some(), "{key} missing");
        }
        // Every prototype is nearest to itself, and no two coincide.
        for t in &catalogue.types {
            let (nearest, distance) = catalogue.nearest(&t.prototype);
            assert_eq!(nearest.key, t.key);
            assert_eq!(distance, 0.0);
            for other in catalogue.types.iter().filter(|o| o.key != t.key) {
                let d: f32 = t
                    .prototype
                    .iter()
                    .zip(&other.prototype)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt();
                assert!(d >= 0.5, "{} and {} are only {d} apart", t.key, other.key);
            }
        }
        // A hostile, intense, public, distrustful customer is an enemy.
        let hostile = [-1.0, 1.0, -0.5, 0.0, 0.0, 0.0, -0.5, -1.0, -1.0, 1.0];
        assert_eq!(catalogue.nearest(&hostile).0.key, "enemies");
    }

    #[test]
    fn missing_dimensions_and_out_of_range_values_are_reported_with_lines() {
        let text = "# catalogue\n\n[types.odd]\nname = \"Odd\"\ndescription = \"d\"\ntreatment = \"\"\n\
                    prototype = { valence = 2.0, moodiness = 0.1 }\n";
        let err = parse(text, "r.toml").unwrap_err().to_string();
        assert!(
            err.contains("r.toml:3: types.odd.treatment: is empty"),
            "{err}"
        );
        assert!(
            err.contains("types.odd.prototype.valence: 2 is outside [-1, 1]"),
            "{err}"
        );
        assert!(
            err.contains("types.odd.prototype.trust: is missing"),
            "{err}"
        );
        assert!(
            err.contains("types.odd.prototype.moodiness: is not a dimension"),
            "{err}"
        );
        let empty = parse("", "r.toml").unwrap_err().to_string();
        assert!(empty.contains("no relationship types"), "{empty}");
    }
}

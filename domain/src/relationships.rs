//! The relationship types of Avery, Fournier & Wittenbraker (HBR 2014) as data: each a
//! prototype point in the ten relationship dimensions; a profile is typed by the nearest.
//! `rapport_config::relationships` reads and checks the catalogue file.

/// The relationship dimensions of DESIGN.md §7, each in [-1, 1], in prototype order.
pub const DIMENSIONS: [&str; 10] = [
    "valence",
    "intensity",
    "reciprocity",
    "power_balance",
    "novelty_seeking",
    "price_focus",
    "contribution",
    "trust",
    "commitment",
    "publicness",
];

/// One relationship type, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipType {
    /// The table name, e.g. `best_friends`.
    pub key: String,
    pub name: String,
    pub description: String,
    pub treatment: String,
    /// In `DIMENSIONS` order.
    pub prototype: [f32; 10],
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipCatalogue {
    pub types: Vec<RelationshipType>,
}

impl RelationshipCatalogue {
    /// The type whose prototype is nearest `point` (Euclidean), with the distance.
    pub fn nearest(&self, point: &[f32; 10]) -> (&RelationshipType, f32) {
        self.types
            .iter()
            .map(|t| {
                let d2: f32 = t
                    .prototype
                    .iter()
                    .zip(point)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                (t, d2.sqrt())
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("a validated catalogue has types")
    }

    pub fn get(&self, key: &str) -> Option<&RelationshipType> {
        self.types.iter().find(|t| t.key == key)
    }
}

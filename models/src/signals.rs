//! The trained signals: their classes and how each corpus spells its labels. The heads
//! themselves are trained by `train.rs` and stored under `models/heads/`.

/// A signal with a trained head.
#[derive(Debug, Clone, Copy)]
pub struct SignalSpec {
    pub name: &'static str,
    /// In head output order.
    pub classes: &'static [&'static str],
    /// Corpus labels that mean a class under another name (compared lower-case).
    pub aliases: &'static [(&'static str, &'static str)],
}

pub const SENTIMENT: SignalSpec = SignalSpec {
    name: "sentiment",
    classes: &["negative", "neutral", "positive"],
    aliases: &[],
};

pub const EMOTION: SignalSpec = SignalSpec {
    name: "emotion",
    classes: &["anger", "joy", "optimism", "sadness"],
    aliases: &[],
};

pub const COMPLAINT: SignalSpec = SignalSpec {
    name: "complaint",
    classes: &["not_complaint", "complaint"],
    // The complaints corpus: 1 complaint, 0 not.
    aliases: &[("0", "not_complaint"), ("1", "complaint")],
};

pub const SIGNALS: [SignalSpec; 3] = [SENTIMENT, EMOTION, COMPLAINT];

pub fn by_name(name: &str) -> Option<&'static SignalSpec> {
    SIGNALS.iter().find(|s| s.name == name)
}

impl SignalSpec {
    /// The class index a corpus label stands for, if any.
    pub fn class_of(&self, label: &str) -> Option<usize> {
        let label = label.trim().to_lowercase();
        let name = self
            .aliases
            .iter()
            .find(|(alias, _)| *alias == label)
            .map_or(label.as_str(), |(_, class)| class);
        self.classes.iter().position(|c| *c == name)
    }

    pub fn class_names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_spellings_map_to_classes() {
        assert_eq!(SENTIMENT.class_of("Positive"), Some(2));
        assert_eq!(SENTIMENT.class_of(" negative "), Some(0));
        assert_eq!(COMPLAINT.class_of("1"), Some(1));
        assert_eq!(COMPLAINT.class_of("complaint"), Some(1));
        assert_eq!(EMOTION.class_of("fear"), None);
    }
}

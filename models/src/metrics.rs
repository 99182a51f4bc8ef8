//! Classification metrics for `rapport eval` and the head cards: accuracy, macro-F1,
//! macro-recall and the confusion matrix behind them.

/// Counts of (true class, predicted class).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confusion {
    pub classes: Vec<String>,
    /// `counts[truth][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

/// The summary figures of a confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    /// Mean of per-class F1 over the classes that occur in truth or prediction.
    pub macro_f1: f64,
    /// Mean of per-class recall over the classes that occur in truth (TweetEval's
    /// sentiment measure).
    pub macro_recall: f64,
    pub examples: usize,
}

impl Confusion {
    pub fn new(classes: Vec<String>) -> Confusion {
        let n = classes.len();
        Confusion {
            classes,
            counts: vec![vec![0; n]; n],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// Adds another matrix over the same classes (cross-validation folds).
    pub fn merge(&mut self, other: &Confusion) {
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (c, o) in row.iter_mut().zip(other_row) {
                *c += o;
            }
        }
    }

    pub fn scores(&self) -> Scores {
        let n = self.classes.len();
        let total: usize = self.counts.iter().flatten().sum();
        let correct: usize = (0..n).map(|i| self.counts[i][i]).sum();
        let mut f1s = Vec::new();
        let mut recalls = Vec::new();
        for class in 0..n {
            let truth: usize = self.counts[class].iter().sum();
            let predicted: usize = self.counts.iter().map(|row| row[class]).sum();
            let hits = self.counts[class][class] as f64;
            if truth > 0 {
                recalls.push(hits / truth as f64);
            }
            if truth + predicted > 0 {
                f1s.push(2.0 * hits / (truth + predicted) as f64);
            }
        }
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        Scores {
            accuracy: if total == 0 {
                0.0
            } else {
                correct as f64 / total as f64
            },
            macro_f1: mean(&f1s),
            macro_recall: mean(&recalls),
            examples: total,
        }
    }

    /// The matrix as text: rows are the truth, columns the prediction.
    pub fn table(&self) -> String {
        let width = self
            .classes
            .iter()
            .map(|c| c.chars().count())
            .chain(self.counts.iter().flatten().map(|c| c.to_string().len()))
            .max()
            .unwrap_or(1)
            .max(6);
        let mut out = format!("{:>width$}", "truth\\predicted");
        for class in &self.classes {
            out.push_str(&format!(" {class:>width$}"));
        }
        out.push('\n');
        for (class, row) in self.classes.iter().zip(&self.counts) {
            out.push_str(&format!("{class:>w$}", w = width.max(15)));
            for count in row {
                out.push_str(&format!(" {count:>width$}"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_a_hand_computation() {
        // Truth/predicted pairs over three classes:
        //   a: 3 right, 1 predicted b  → recall 3/4
        //   b: 2 right, 2 predicted c  → recall 2/4
        //   c: 1 right                 → recall 1/1
        // Predicted counts: a 3, b 3, c 3. F1 = 2·hits / (truth + predicted):
        //   a 6/7, b 4/7, c 2/4.
        let mut m = Confusion::new(vec!["a".into(), "b".into(), "c".into()]);
        for (t, p) in [
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 1),
            (1, 1),
            (1, 1),
            (1, 2),
            (1, 2),
            (2, 2),
        ] {
            m.add(t, p);
        }
        let s = m.scores();
        assert_eq!(s.examples, 9);
        assert!((s.accuracy - 6.0 / 9.0).abs() < 1e-12);
        assert!((s.macro_recall - (0.75 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((s.macro_f1 - (6.0 / 7.0 + 4.0 / 7.0 + 0.5) / 3.0).abs() < 1e-12);
        let table = m.table();
        assert!(table.lines().nth(2).unwrap().trim_start().starts_with("b"));
    }

    #[test]
    fn merged_folds_add_up() {
        let mut a = Confusion::new(vec!["x".into(), "y".into()]);
        a.add(0, 1);
        let mut b = Confusion::new(vec!["x".into(), "y".into()]);
        b.add(0, 1);
        b.add(1, 1);
        a.merge(&b);
        assert_eq!(a.counts, vec![vec![0, 2], vec![0, 1]]);
    }
}

//! Phrase cues in the four languages, for what the embedding labels miss.
//!
//! The `churn_threat` prototype label is calibrated for precision and finds few real
//! threats to leave: on the demo corpus it flagged none of the eight customers who write
//! "never again", "I'll close my account" or "jeg sier opp Plus". Saying that one will
//! leave is a small closed set of phrasings per language, so they are matched as phrases;
//! either the label or a phrase makes a churn threat.

use std::sync::LazyLock;

use regex::Regex;

/// Ways of saying "I am leaving / will not buy again", per language. Bounded gaps
/// (`[^.!?]{0,40}`) keep both words in one sentence.
const LEAVING: &[&str] = &[
    // English
    r"\bnever (again|buy(ing)? (from|here)|shop(ping)? (with|at|here))",
    r"\b(won'?t|will not|not going to) (buy|shop|order) (from|with|at|here|there)",
    r"\bclos(e|ing) (my|our) account",
    r"\bcancel(l?ing)? (my|our) (subscription|membership|account|contract|plan)",
    r"\btak(e|ing) (my|our) (business|money|custom) elsewhere",
    r"\b(switch|switching|move|moving) to (a |another )?(competitor|rival)",
    r"\bnot sure (i|we)'?ll (be back|stay)",
    // "Never (buy here) again": aldrig/aldri … igen/igjen/mere/mer, around a buying verb
    // (a bare "aldri … mer" is as often "never more than").
    r"\b(aldrig|aldri) (igen|igjen|mere|mer)\b",
    r"\b(handl|køb|kjøp|köp|bestill|beställ)\w*\b[^.!?]{0,40}\b(aldrig|aldri)\b[^.!?]{0,40}\b(igen|igjen|mere|mer)\b",
    r"\b(aldrig|aldri)\b[^.!?]{0,40}\b(handl|køb|kjøp|köp|bestill|beställ)\w*[^.!?]{0,40}\b(igen|igjen|mere|mer)\b",
    // Cancelling: opsige / si opp / säga upp, also with the subject between (V2 order:
    // "så siger jeg op", "annars säger jag upp")
    r"\bopsiger?\b",
    r"\bsiger? (jeg |vi )?op\b",
    r"\bsi(er)? (jeg |vi )?opp\b",
    r"\bsäg(a|er) (jag |vi )?upp\b",
    // Not renewing
    r"\bikke (tænkt mig at )?(forny|forlænge)",
    r"\bikke (tenkt å )?(fornye|forlenge)",
    r"\binte (tänkt )?(förnya|förlänga)",
    // Shopping elsewhere / at a competitor
    r"\b(handle|handler|køber|kjøper)\b[^.!?]{0,40}\b(andre steder|andet sted|et annet sted|hos en konkurrent)",
    r"\b(handlar|köper|flyttar|flytta)\b[^.!?]{0,40}\b(annanstans|någon annanstans|annan butik|hos en konkurrent)",
    r"\bvet inte om (jag|vi) stannar",
];

static LEAVING_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("(?i)(?:{})", LEAVING.join("|"))).expect("the churn phrases compile")
});

/// Whether `text` says its writer will leave, cancel or not buy again.
pub fn says_leaving(text: &str) -> bool {
    LEAVING_RE.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::says_leaving;

    #[test]
    fn threats_to_leave_are_found_in_each_language() {
        for text in [
            "Worst company I've ever dealt with. Never again.",
            "If it isn't refunded by Friday I'll close my account.",
            "Jeg handler aldrig hos jer igen.",
            "Jeg har ikke tænkt mig at forny Plus.",
            "Jeg kommer aldri til å handle der igjen.",
            "Jeg returnerer ruteren og sier opp Plus-medlemskapet.",
            "Annars säger jag upp mitt Plus.",
            "Jag kommer aldrig att handla där igen.",
            "Jag flyttar mina köp till en annan butik.",
        ] {
            assert!(says_leaving(text), "{text}");
        }
    }

    #[test]
    fn staying_and_ordinary_requests_are_not_threats() {
        for text in [
            "I've been with you eight years and I'm not going anywhere.",
            "Can I cancel the order I placed by mistake and order the blue one?",
            "Jeg har været kunde hos jer i 11 år.",
            "Hvornår kommer pakken?",
            "Jeg vil gerne forny mit Plus-medlemskab.",
            "Kan jeg få pengene tilbake?",
            "Jag stannar kvar, ni är bäst.",
        ] {
            assert!(!says_leaving(text), "{text}");
        }
    }
}

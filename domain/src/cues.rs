//! Phrase cues in the four languages, for what the embedding labels miss.
//!
//! Some prototype labels are calibrated for precision and find only a quarter to a third
//! of their messages (recall on the signals dev set: `churn_threat` 0.37,
//! `long_term_commitment` 0.26, `full_service` 0.28, `honest_answers` 0.16; none of the
//! eight threats to leave in the demo corpus). Where saying it is a small, closed set of
//! phrasings per language — cancel in the present tense, never again, switch provider; plan
//! to stay, won't switch; handle everything, a named contact; a straight answer, no canned
//! replies — the phrases are matched too, and a label counts as present when either the
//! label or one of its phrases fires.
//!
//! Measured (`benches/README.md`) on the dev set (`models/eval/signals-dev`, which the
//! phrases were written against, so an upper bound) and on third-party text never looked
//! at while writing them (support tweets of `labelled/complaints`, NoReC review sentences).

use std::sync::LazyLock;

use regex::Regex;

/// `churn_threat`: ways of saying "I am leaving / will not buy again". Bounded gaps
/// (`[^.!?]{0,40}`) keep both words in one sentence.
const LEAVING: &[&str] = &[
    // English
    r"\bnever (again|buy(ing)? (from|here)|shop(ping)? (with|at|here))",
    r"\b(won'?t|will not|not going to) (buy|shop|order) (from|with|at|here|there)",
    r"\b(i'?ll|i will|i'?m going to) (close|cancel) my",
    r"\bclos(e|ing) my account",
    r"\b(i'?m|i am) cancel?ling my",
    r"\btak(e|ing) (my|our) (business|money|custom) elsewhere",
    r"\b(switch|switching|move|moving) to (a |another )?(competitor|rival|another (bank|provider|supplier|shop|store))",
    r"\bnot sure (i|we)'?ll (be back|stay)",
    r"\bcancel(l?ing)? (my|the|our) (subscription|membership|account|contract|policy|plan)",
    r"\b(i'?m|i am|or i'?m) (switching|leaving)\b",
    r"\b(transfer|transferring|move|moving) (my|our|everything)\b[^.!?]{0,30}\b(elsewhere|to another|to a different)",
    r"\bgo(ing)? (to|with) (your|a|another) (competitor|rival)|\bgo with someone (else|who)",
    r"\b(that was|this is|this was) the last time (i|we)\b",
    // As support tweets say it (models/eval/flags-dev, its dev half): never … again,
    // the last time I buy, gone to a competitor (often by @handle), shopping around.
    r"\bnever (buy|buying|shop|shopping|use|using|order|ordering|fly|flying|eat|eating|go|going|book|booking)\b[^.!?]{0,40}\bagain\b",
    r"(\bnot|n'?t|\bnever)\b[^.!?]{0,20}\bever (buy|buying|shop|shopping|use|using|order|ordering|fly|flying|book|booking)\b[^.!?]{0,30}\bagain\b",
    r"\blast time (i|we)('?ll)? (buy|use|order|fly|shop|eat|book)\b",
    r"\b(went|go|going|gone) (to|with) (another|a different|a new|an other) (service|company|provider|store|shop|bank|carrier|airline|insurer)\b",
    r"\b(switched|switching|moved|moving|went) (over )?to @\w+",
    r"\bfrom now on (i|we)('ll| will)? (get|use|go (to|with)|order (from|with)|buy (from|at)|shop (at|with)|fly with|book with) @?\w+",
    r"\btak(e|ing) (my|our) (\$+|money\b|business\b|custom\b)[^.!?]{0,10}\bto @?\w+",
    // Shopping around, said of oneself and not negated ("I'm not about to start shopping
    // around now" is loyalty): the regex crate has no look-behind, so the forms are spelled.
    r"(^|[.!?]\s*|\b(i'?m|i am|we'?re|we are|i'?ll|i will|we'?ll|been|time to( start)?|started|go) (be )?)shopping around\b",
    r"\b(close to|about to|ready to|thinking (of|about)) cancel",
    // "Never again": a sentence of its own ...
    r"\b(aldrig|aldri) (igen|igjen|mere|mer)\s*([.!?]|$)",
    // ... or around a buying verb (a bare "aldri mer" is as often "never more than")
    r"\b(handl|køb|kjøp|köp|bestill|beställ|bok|flyv|flyg)\w*\b[^.!?]{0,40}\b(aldrig|aldri)\b[^.!?]{0,40}\b(igen|igjen|mere|mer)\b",
    r"\b(aldrig|aldri)\b[^.!?]{0,40}\b(handl|køb|kjøp|köp|bestill|beställ|bok|flyv|flyg)\w*[^.!?]{0,40}\b(igen|igjen|mere|mer)\b",
    // Cancelling, in the present tense that announces it ("jeg sier opp", "så säger jag
    // upp"); the infinitive is as often a question or someone else's contract.
    r"\b(opsiger|siger) (jeg |vi )?(op|det|den|abonnement|medlemskab|aftale)",
    r"\bopsiger (jeg|vi)\b",
    r"\bsier (jeg |vi )?opp\b",
    r"\b(har|have) (allerede |redan )?(sagt opp|sagt op|sagt upp|opsagt)\b",
    r"\b(ønsker|vil|vill) (gerne |gjerne )?(at |å |att )?(opsige|si opp|säga upp)\b",
    r"\bsäger (jag |vi )?upp\b",
    r"\b(avslutter|lukker|afslutter) (jeg |vi )?(kontoen|konto|abonnement|avtalen|aftalen)",
    // Not renewing
    r"\bikke (tænkt mig at )?(forny|forlænge)",
    r"\bikke (tenkt å )?(fornye|forlenge)",
    r"\binte (tänkt )?(förnya|förlänga)",
    // Going to a competitor: switching provider, moving one's money or purchases
    r"\b(skifter|skifte|bytter|bytte|byter|byta) (jeg |jag |vi )?(til |till )?(et |en |ett )?(andet |anden |annet |annen |annat |annan |ny |nytt )?\w*(selskab|selskap|bolag|bank|leverandør|leverantör|forsikring|försäkring|operatør|operatör)",
    r"\b(flytter|flytta|flyttar) (jeg |jag |vi )?(mine|mina|vores|våra|alle|all|både) ",
    r"\b(til|till|hos) (et |en |ett )?(andet|anden|annet|annen|annat|annan) (sted|steder|selskab|selskap|bolag|bank|butik|butikk|leverandør|leverantör)",
    r"\b(til|till) (en |ei )?konkurrent(en)?\b",
    r"\b(handle|handler|køber|kjøper)\b[^.!?]{0,40}\b(andre steder|andet sted|et annet sted|hos en konkurrent)",
    r"\b(handlar|köper)\b[^.!?]{0,40}\b(annanstans|någon annanstans|hos en konkurrent)",
    r"\b(så|ellers|eller) (er jeg væk|går jeg|flytter jeg|flyttar jag|går jag|er jeg borte)",
    r"\bvet inte om (jag|vi) stannar",
];

/// `long_term_commitment`: ways of saying "I am staying". Tenure alone ("customer for 15
/// years") is not it: it opens as many goodbyes.
const STAYING: &[&str] = &[
    // English
    r"\b(plan|planning|intend|intending|going|want) (to|on) (stay|staying|keep|keeping)\b",
    r"\bnot (going|planning on going|planning on leaving|leaving) anywhere\s*([.!,;]|$|but|and)",
    r"\bnot planning on (leaving|going|switching)",
    r"\bno (intention|plans?) (of|to) (leav|go|switch|mov)",
    r"\b(will|i'?ll|we'?ll) keep (doing|using|flying|banking|shopping|coming)",
    r"\bfor the long haul\b|\blong-term partner|\bmulti-year\b",
    // Won't switch
    r"\b(tænker|tenker|tänker) (ikke|inte) (på |på att |å )?(at )?(skifte|bytte|byta)\b",
    r"\b(skifter|bytter|byter) (ikke|inte)\b",
    r"\bingen planer om at skifte",
    r"\b(kommer|tænker|tenker) (aldri|aldrig|ikke) (til å |på at )?(bytte|skifte)",
    // Staying, continuing
    r"\b(bliver|blir|stannar) (gerne |gjerne )?(hos jer|hos dere|hos er|ved)\b",
    r"\bblive (ved )?hos jer\b|\bblive ved med\b|\bbli (værende )?hos dere\b",
    r"\b(tænkt mig at|tenkt å|tänker|tänkt att) (blive|bli|stanna|fortsætte|fortsette|fortsätta)",
    r"\b(vil|vill|ønsker|önskar) (gerne |gjerne |gärna |ju )?(at |å |att )?(fortsætte|fortsette|fortsätta|blive hos|bli hos|stanna)\b",
    r"\b(fortsætte|fortsette|fortsätta) (som kunde|med jer|med dere|med er|med det|mange år|många år|länge)",
    r"\b(kommer til å|kommer att|vil) (fortsette|fortsätta)",
    r"\bvara det länge till\b",
    // Asking for a longer tie
    r"\b(longer|længere|lengre|längre|flerårig|flerårs)\w* (avtal|aftale|avtale|contract|agreement)",
    r"\blangsiktig|\blångsiktig|\blængerevarende",
];

/// `full_service`: ways of asking the company to do it all ("handle everything", a named
/// contact, "I expect you to take care of…"). The hard negatives of the dev set are the
/// same requests done by oneself ("jeg sætter selv routeren op"), so every phrase names the
/// company's part.
const FULL_SERVICE: &[&str] = &[
    r"\b(handle|handles|handled|manage|take care of|deal with|deals with|sort out|sort) (it all|everything|the whole|the lot|all of it)",
    r"\b(everything|it all|the lot)\b[^.!?]{0,20}\b(handled|taken care of|sorted)\b",
    r"\b(dedicated|named|personal|single) (relationship manager|account manager|contact|adviser|advisor|claims handler|point of contact)",
    r"\bwhite-glove\b",
    r"\b(don'?t|do not) want to (do|deal with|chase|sort)[^.!?]{0,20}\bmyself",
    r"\b(tager|tage|tag) (sig|jer) af (alt|det hele)|\bsørger for (alt|det hele)|\bstår for (levering|alt|det hele)",
    r"\b(tar|ta) (hånd om|seg av) (alt|hele)|\bordner (alt|hele)|\bfra a til å\b",
    r"\b(sköter|tar hand om|ta hand om) (allt|alla|hela|mina)|\bhelhets(flytt|lösning|løsning|service)",
    r"\b(fast|egen|personlig|dedikeret|dedikert|dedikerad|namngiven) (personlig )?(rådgiver|rådgivare|kontaktperson|kontakt|handläggare|kundansvarig|sagsbehandler|saksbehandler)",
    r"\bvill inte behöva\b|\bvil ikke (behøve|måtte)\b",
    r"\b(kan|kunne) (i|dere|ni|you)[^.!?]{0,25}\b(sætte|sette|sätta|koble|koppla|montere|montera|set)\b[^.!?]{0,25}\b(op|opp|upp|up|in|inn)\b",
    r"\b(i|we) (really )?(don'?t|do not) want to do (it|this|that|any of (it|this)) (myself|ourselves)",
    r"\b(regner|regnar|räknar) (jeg|jag|vi) med,? at (i|dere|ni)\b",
    r"\b(forventer|förväntar|expect) (jeg |jag |mig |meg )?(at |att |that )?(i|dere|ni|you|your team)\b[^.!?]{0,30}\b(sørger|ordner|sköter|handle|handles|tar|tager|take)",
    r"\b(utgår|går) (jeg |jag )?(från|ut fra|ud fra) att ni\b",
];

/// `honest_answers`: asking for a straight answer ("be straight with me", "et ærligt svar",
/// "säg som det är", no canned replies). The dev set's hard negatives are plain questions
/// and thanks for a clear answer, so "clear" alone is not one of them.
const HONEST_ANSWERS: &[&str] = &[
    r"\b(be|being) (honest|upfront|straight|open) with (me|us)\b",
    r"\b(straight|honest|clear,? honest|frank) (answer|yes or no|explanation|reply)\b",
    r"\btell (me|us) the truth\b|\bi (just )?want the truth\b|\btell (me|us) what'?s (actually|really) going on\b",
    r"\b(no|stop (the|with|sending)) (scripted|canned|copy-paste|template|standard) (answers?|responses?|replies)",
    r"\bjust say it\b|\bsay it straight\b",
    r"\b(ærligt?|ærlig|sandfærdigt?|konkret|rakt|ärligt?) (og konkret |och konkret )?(svar|besked)\b",
    r"\bvær(e)? ærlige? (over for|overfor|med) (mig|meg|os|oss)\b|\bvar ärlig\b|\bsvar(e)? (meg|mig) ærlig\b|\bhelt ærligt, sig\b",
    r"\b(sig|si|säg) (det )?(som det er|som det är|ligeud|rett ut|det nu bare)\b",
    r"\b(vil ha|vill ha|vil have|hellere have|hellre ha|heller ha|want) (the )?(sandheden|sannheten|sanningen|truth)\b",
    r"\b(ikke|inte) pakk(e|a)? (det )?inn\b|\bikke pak det ind\b",
    r"\b(copy-paste|standard|ferdigskrevne|automat)[- ]?(svar|svaren|svarene|tekster|texter|mails|mejl)\b|\b(säljsnack|udenomssnak)\b",
    r"\brakt på sak\b|\blæg tallene frem\b|\btransparent redogörelse\b",
    r"\b(ja eller nei|ja eller nej|yes or no)\b",
];

/// Each label with phrases, and its phrases as one case-insensitive pattern.
static CUES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        ("churn_threat", LEAVING),
        ("long_term_commitment", STAYING),
        ("full_service", FULL_SERVICE),
        ("honest_answers", HONEST_ANSWERS),
    ]
    .into_iter()
    .map(|(label, phrases)| {
        let pattern = format!("(?i)(?:{})", phrases.join("|"));
        (
            label,
            Regex::new(&pattern).expect("the cue phrases compile"),
        )
    })
    .collect()
});

/// Whether `text` says what prototype label `label` stands for in one of its phrases
/// (`false` for a label without phrases).
pub fn says(label: &str, text: &str) -> bool {
    CUES.iter()
        .any(|(name, phrases)| *name == label && phrases.is_match(text))
}

/// Whether label `label` has phrases here.
pub fn has_phrases(label: &str) -> bool {
    CUES.iter().any(|(name, _)| *name == label)
}

#[cfg(test)]
mod tests {
    use super::says;

    fn says_leaving(text: &str) -> bool {
        says("churn_threat", text)
    }

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
            "Match it or I'm switching.",
            "Feel very unvalued as a customer.... Shopping around, any suggestions?",
            "Three price rises this year, so I'm shopping around.",
            "I'm moving everything to another bank this month.",
            "Bliver det ikke bedre, opsiger jeg og går over til en anden udbyder.",
            "Har allerede sagt opp. Ha det.",
            "Får ni inte ordning på det byter jag elbolag.",
            "Never buying a Volkswagen again after this.",
            "I don't think I'm ever using your company again.",
            "Couldn't figure it out so I went to another service.",
            "Hey @Insurer I switched to @OtherInsurer and saved 50%",
            "From now on we get @pizzaplace",
            "I'll take my $$ to @OtherStore",
            "Terrible claim experience. Shopping around, any suggestions?",
            "This is the last time I buy this beer.",
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
            "Min mor er gået bort, og jeg skal opsige hendes mobilabonnement.",
            "Hur lång är uppsägningstiden? Jag ska inte säga upp, vill bara veta.",
            "Jeg blir aldri mer enn passe imponert av slike tilbud.",
            "Kan jeg bytte varen til en anden farve?",
            "I'll never forget how kind your staff was. Will buy again!",
            "Went to the store again today, great selection.",
            "Can I switch to the yearly plan?",
            "From now on I'll order online, much easier than the phone line.",
            "Lovely. You've never let me down, so I'm not about to start shopping around now.",
        ] {
            assert!(!says_leaving(text), "{text}");
        }
    }

    #[test]
    fn staying_is_found_and_tenure_alone_is_not() {
        let staying = |t: &str| says("long_term_commitment", t);
        for text in [
            "I've been with you eight years and I'm not going anywhere.",
            "Vi har ingen planer om at skifte.",
            "Jag har varit kund sedan 2009 och tänker inte byta.",
            "Vi har vært kunder i snart 20 år og har tenkt å fortsette.",
            "We'd like a longer contract, three years if possible.",
        ] {
            assert!(staying(text), "{text}");
        }
        for text in [
            "Jeg har været kunde i 25 år, men nu flytter jeg til en anden bank.",
            "I'm not going anywhere near a drop-off point.",
            "Hvornår kommer pakken?",
        ] {
            assert!(!staying(text), "{text}");
        }
        assert!(!says("no_such_label", "I'm not going anywhere."));
    }

    #[test]
    fn asking_to_have_it_all_done_is_full_service_and_doing_it_oneself_is_not() {
        let full_service = |t: &str| says("full_service", t);
        for text in [
            "I'd like a dedicated relationship manager who handles everything for me.",
            "Jeg forventer, at I sørger for det hele.",
            "Vi vill att ni tar hand om allt, och en namngiven kontaktperson.",
            "Jeg vil ha en fast kontaktperson som tar seg av alt.",
        ] {
            assert!(full_service(text), "{text}");
        }
        for text in [
            "I'll set up the mesh myself, just send me the guide.",
            "Jeg sætter selv routeren op, har bare brug for koden.",
            "Jag vill kunna sköta allt själv i appen.",
        ] {
            assert!(!full_service(text), "{text}");
        }
    }

    #[test]
    fn asking_for_a_straight_answer_is_honest_answers_and_a_plain_question_is_not() {
        let honest = |t: &str| says("honest_answers", t);
        for text in [
            "Please be straight with me: is the X3 worth it?",
            "Jeg vil gerne have et ærligt svar.",
            "Säg som det är: är paketet borta?",
            "Slutt å sende ferdigskrevne tekster.",
        ] {
            assert!(honest(text), "{text}");
        }
        for text in [
            "Tack för ett tydligt besked om avbrottet igår!",
            "Hvornår kan jeg forvente, at min pakke bliver leveret?",
            "Does the premium plan include offline downloads?",
        ] {
            assert!(!honest(text), "{text}");
        }
    }
}

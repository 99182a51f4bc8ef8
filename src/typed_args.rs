//! CLI values typed by the names the domain itself gives them: clap lists the possible
//! values in `--help`, rejects any other with that list, and the commands receive the
//! type, never a string to match again.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use rapport_connectors::{Channel, Format};
use rapport_pipeline::flags::{FlagKind, FlagStatus};
use rapport_pipeline::store::CustomerSpace;

/// A value named by one of `names`, read back with the type's own `parse`.
fn by_name<T: Clone + Send + Sync + 'static>(
    names: impl IntoIterator<Item = &'static str>,
    parse: fn(&str) -> Option<T>,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(names)
        .map(move |name| parse(&name).expect("clap admits only the type's own names"))
}

/// `--kind`: a flag kind.
pub fn flag_kind() -> impl TypedValueParser<Value = FlagKind> {
    by_name(FlagKind::ALL.map(FlagKind::as_str), FlagKind::parse)
}

/// `--status`: a flag status.
pub fn flag_status() -> impl TypedValueParser<Value = FlagStatus> {
    by_name(FlagStatus::ALL.map(FlagStatus::as_str), FlagStatus::parse)
}

/// `--channel`: a channel.
pub fn channel() -> impl TypedValueParser<Value = Channel> {
    by_name(Channel::ALL.map(Channel::as_str), Channel::parse)
}

/// `--by`: which of a customer's vectors "similar" means.
pub fn customer_space() -> impl TypedValueParser<Value = CustomerSpace> {
    by_name(
        CustomerSpace::ALL.map(CustomerSpace::as_str),
        CustomerSpace::parse,
    )
}

/// `--format`: a source format, or `auto` (`None`: detect each file's). A type of its own,
/// since clap reads an `Option` field as "the flag may be absent".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatChoice(pub Option<Format>);

pub fn format() -> impl TypedValueParser<Value = FormatChoice> {
    let names = std::iter::once("auto").chain(Format::ALL.iter().map(|f| f.name()));
    PossibleValuesParser::new(names).map(|name| FormatChoice(Format::from_name(&name)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[arg(long, value_parser = flag_kind())]
        kind: Option<FlagKind>,
        #[arg(long, value_parser = flag_status())]
        status: Option<FlagStatus>,
        #[arg(long, value_parser = channel())]
        channel: Option<Channel>,
        #[arg(long, default_value = "semantic", value_parser = customer_space())]
        by: CustomerSpace,
        #[arg(long, default_value = "auto", value_parser = format())]
        format: FormatChoice,
    }

    #[test]
    fn every_name_the_domain_gives_parses_to_its_value_and_others_are_refused() {
        for kind in FlagKind::ALL {
            let args = Args::try_parse_from(["t", "--kind", kind.as_str()]).unwrap();
            assert_eq!(args.kind, Some(kind));
        }
        for status in FlagStatus::ALL {
            let args = Args::try_parse_from(["t", "--status", status.as_str()]).unwrap();
            assert_eq!(args.status, Some(status));
        }
        for channel in Channel::ALL {
            let args = Args::try_parse_from(["t", "--channel", channel.as_str()]).unwrap();
            assert_eq!(args.channel, Some(channel));
        }
        let args = Args::try_parse_from(["t", "--by", "relationship"]).unwrap();
        assert_eq!(args.by, CustomerSpace::Relationship);
        let defaults = Args::try_parse_from(["t"]).unwrap();
        assert_eq!(
            (defaults.by, defaults.format),
            (CustomerSpace::Semantic, FormatChoice(None))
        );
        let mbox = Args::try_parse_from(["t", "--format", "mbox"]).unwrap();
        assert_eq!(mbox.format, FormatChoice(Some(Format::Mbox)));
        let refused = Args::try_parse_from(["t", "--status", "closed"])
            .err()
            .unwrap();
        assert!(
            refused.to_string().contains("acknowledged"),
            "the error lists the possible values: {refused}"
        );
    }
}

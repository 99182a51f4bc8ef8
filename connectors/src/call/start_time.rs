//! When a call started, for the many transcripts that do not say: the vendor's own field
//! first (Deepgram `metadata.created`), then a date (and time) in the file's name, as
//! recorders and exports write them, then the source's own time (the file's modification
//! time, which a copy or a checkout resets). Each turn records which in `date_source`.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::unit::ParseContext;

/// The call's start and where it came from: `vendor`, `file_name` or `source`.
pub(crate) fn call_start(
    vendor: Option<OffsetDateTime>,
    ctx: &ParseContext,
) -> (OffsetDateTime, &'static str) {
    if let Some(at) = vendor {
        return (at, "vendor");
    }
    let name = ctx.source.rsplit(['/', '\\']).next().unwrap_or(&ctx.source);
    match date_in_name(name) {
        Some(at) => (at, "file_name"),
        None => (ctx.source_time, "source"),
    }
}

/// The first date in a file name, `2026-03-02`, `2026_03_02` or `20260302`, with the time
/// that follows it when there is one (`T101500`, `_10-15-00`, `-1015`), read as UTC.
pub(crate) fn date_in_name(name: &str) -> Option<OffsetDateTime> {
    let bytes = name.as_bytes();
    (0..bytes.len()).find_map(|at| {
        let starts_a_number = at == 0 || !bytes[at - 1].is_ascii_digit();
        starts_a_number.then(|| date_at(bytes, at)).flatten()
    })
}

fn date_at(bytes: &[u8], at: usize) -> Option<OffsetDateTime> {
    let mut cursor = Cursor { bytes, at };
    let year = cursor.digits(4)?;
    let dashed = cursor.separator(b"-_.");
    let month = cursor.digits(2)?;
    if dashed != cursor.separator(b"-_.") {
        return None;
    }
    let day = cursor.digits(2)?;
    if cursor.peek().is_some_and(|b| b.is_ascii_digit()) || !(1990..=2100).contains(&year) {
        return None;
    }
    let date = Date::from_calendar_date(year as i32, Month::try_from(month as u8).ok()?, day as u8)
        .ok()?;
    let time = cursor.time().unwrap_or(Time::MIDNIGHT);
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let run = self.bytes.get(self.at..self.at + n)?;
        if !run.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at += n;
        Some(run.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0')))
    }

    /// Skips one of `separators`; whether there was one.
    fn separator(&mut self, separators: &[u8]) -> bool {
        let found = self.peek().is_some_and(|b| separators.contains(&b));
        self.at += usize::from(found);
        found
    }

    /// `T101500`, `_10-15-00`, `-1015`: hours and minutes, seconds optional.
    fn time(&mut self) -> Option<Time> {
        let mut copy = Cursor {
            bytes: self.bytes,
            at: self.at,
        };
        if !copy.separator(b"T_- ") {
            return None;
        }
        let hour = copy.digits(2)?;
        copy.separator(b"-:.h");
        let minute = copy.digits(2)?;
        let second = {
            let mut seconds = Cursor {
                bytes: copy.bytes,
                at: copy.at,
            };
            seconds.separator(b"-:.");
            seconds
                .digits(2)
                .filter(|_| !seconds.peek().is_some_and(|b| b.is_ascii_digit()))
        };
        if second.is_none() && copy.peek().is_some_and(|b| b.is_ascii_digit()) {
            return None;
        }
        Time::from_hms(hour as u8, minute as u8, second.unwrap_or(0) as u8).ok()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn dates_and_times_are_read_from_the_usual_recorder_names() {
        for (name, want) in [
            (
                "call-2026-03-02_10-15-00.json",
                datetime!(2026-03-02 10:15:00 UTC),
            ),
            (
                "20260302T101530_deepgram.json",
                datetime!(2026-03-02 10:15:30 UTC),
            ),
            (
                "recording_20260302-1015.vtt",
                datetime!(2026-03-02 10:15 UTC),
            ),
            (
                "kundesenter 2026.03.02.srt",
                datetime!(2026-03-02 00:00 UTC),
            ),
            ("agent7_2026_03_02.json", datetime!(2026-03-02 00:00 UTC)),
        ] {
            assert_eq!(date_in_name(name), Some(want), "{name}");
        }
        for name in [
            "call-42.json",
            "job-123456789.json",
            "2026-13-02.vtt",
            "1500-01-01.srt",
            "2026-0302.vtt",
        ] {
            assert_eq!(date_in_name(name), None, "{name}");
        }
    }

    #[test]
    fn the_vendor_time_comes_first_then_the_name_then_the_source() {
        let mut ctx = ParseContext::new("t", "/calls/2026/call-2026-03-02_10-15-00.json");
        ctx.source_time = datetime!(2026-12-08 09:00 UTC);
        let vendor = datetime!(2026-03-01 08:00 UTC);
        assert_eq!(call_start(Some(vendor), &ctx), (vendor, "vendor"));
        assert_eq!(
            call_start(None, &ctx),
            (datetime!(2026-03-02 10:15 UTC), "file_name")
        );
        ctx.source = "/calls/call-42.json".into();
        assert_eq!(call_start(None, &ctx), (ctx.source_time, "source"));
    }
}

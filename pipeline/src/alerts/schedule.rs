//! When a rule's queued alerts are mailed: one mail each as they come, or one digest every
//! so many minutes; never more than `max_per_hour` mails an hour (alerts past the cap wait
//! and go out together in one mail); never while the mail server is being backed off.
//!
//! Pure: the alerter passes the clock in, so these rules are tested without waiting.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

const HOUR: Duration = Duration::from_secs(3600);

/// How a rule sends (from its settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cadence {
    Immediate { max_per_hour: u32 },
    Digest { every: Duration, max_per_hour: u32 },
}

impl Cadence {
    fn max_per_hour(self) -> u32 {
        match self {
            Cadence::Immediate { max_per_hour } | Cadence::Digest { max_per_hour, .. } => {
                max_per_hour
            }
        }
    }
}

/// What a rule's mails did lately: when they were sent, and the back-off after failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delivery {
    /// Mails sent in the last hour, oldest first.
    #[serde(skip)]
    sent_at: VecDeque<OffsetDateTime>,
    /// Failed sends in a row.
    pub failures: u32,
    /// No send before this, after a failure.
    #[serde(with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
}

/// What to do now: the mails to send (each a list of indices into the queued alerts),
/// and when to look again if something is still waiting.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub mails: Vec<Vec<usize>>,
    pub wake_at: Option<OffsetDateTime>,
}

impl Delivery {
    pub fn sent(&mut self, now: OffsetDateTime, mails: usize) {
        self.sent_at.extend(std::iter::repeat_n(now, mails));
        self.failures = 0;
        self.retry_at = None;
    }

    /// Backs off: `initial`, doubling with each failure in a row, at most `max`.
    pub fn failed(&mut self, now: OffsetDateTime, initial: Duration, max: Duration) {
        self.failures += 1;
        let factor = 1u32 << (self.failures - 1).min(20);
        self.retry_at = Some(now + initial.saturating_mul(factor).min(max));
    }

    /// Mails sent in the hour before `now`, forgetting older ones.
    fn recent(&mut self, now: OffsetDateTime) -> usize {
        while self.sent_at.front().is_some_and(|t| *t + HOUR <= now) {
            self.sent_at.pop_front();
        }
        self.sent_at.len()
    }
}

/// Plans the mails for alerts queued at `queued` (oldest first) at `now`.
pub fn plan(
    cadence: Cadence,
    delivery: &mut Delivery,
    queued: &[OffsetDateTime],
    now: OffsetDateTime,
) -> Plan {
    if queued.is_empty() {
        return Plan::default();
    }
    let wait = |until: OffsetDateTime| Plan {
        mails: Vec::new(),
        wake_at: Some(until),
    };
    if let Some(retry_at) = delivery.retry_at
        && retry_at > now
    {
        return wait(retry_at);
    }
    let recent = delivery.recent(now);
    let available = match cadence.max_per_hour() {
        0 => usize::MAX,
        cap => (cap as usize).saturating_sub(recent),
    };
    if available == 0 {
        let frees_at = delivery.sent_at.front().copied().unwrap_or(now) + HOUR;
        return wait(frees_at);
    }
    let all: Vec<usize> = (0..queued.len()).collect();
    match cadence {
        Cadence::Immediate { .. } if queued.len() <= available => Plan {
            mails: all.into_iter().map(|i| vec![i]).collect(),
            wake_at: None,
        },
        Cadence::Immediate { .. } => {
            // One mail each while the cap allows; the last one it allows carries the rest.
            let singles = available - 1;
            let mut mails: Vec<Vec<usize>> = (0..singles).map(|i| vec![i]).collect();
            mails.push(all[singles..].to_vec());
            Plan {
                mails,
                wake_at: None,
            }
        }
        Cadence::Digest { every, .. } => {
            let due = queued[0] + every;
            if due > now {
                wait(due)
            } else {
                Plan {
                    mails: vec![all],
                    wake_at: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-29 09:00 UTC);

    fn minutes(m: i64) -> OffsetDateTime {
        T0 + time::Duration::minutes(m)
    }

    #[test]
    fn immediate_alerts_go_one_mail_each() {
        let mut delivery = Delivery::default();
        let plan = plan(
            Cadence::Immediate { max_per_hour: 10 },
            &mut delivery,
            &[T0, T0],
            T0,
        );
        assert_eq!(plan.mails, vec![vec![0], vec![1]]);
        assert_eq!(plan.wake_at, None);
    }

    #[test]
    fn past_the_hourly_cap_alerts_wait_and_go_together() {
        let cadence = Cadence::Immediate { max_per_hour: 3 };
        let mut delivery = Delivery::default();
        delivery.sent(minutes(0), 1);
        // Two mails left this hour for five alerts: one alone, four together.
        let p = plan(cadence, &mut delivery, &[minutes(10); 5], minutes(10));
        assert_eq!(p.mails, vec![vec![0], vec![1, 2, 3, 4]]);
        delivery.sent(minutes(10), 2);
        // The cap is reached: the next alert waits until the first mail is an hour old.
        let p = plan(cadence, &mut delivery, &[minutes(20)], minutes(20));
        assert!(p.mails.is_empty());
        assert_eq!(p.wake_at, Some(minutes(60)));
        let p = plan(
            cadence,
            &mut delivery,
            &[minutes(20), minutes(30)],
            minutes(60),
        );
        assert_eq!(
            p.mails,
            vec![vec![0, 1]],
            "one slot frees: both in one mail"
        );
    }

    #[test]
    fn a_digest_goes_when_its_oldest_alert_has_waited_the_period() {
        let cadence = Cadence::Digest {
            every: Duration::from_secs(15 * 60),
            max_per_hour: 0,
        };
        let mut delivery = Delivery::default();
        let queued = [minutes(0), minutes(5), minutes(14)];
        let p = plan(cadence, &mut delivery, &queued, minutes(14));
        assert!(p.mails.is_empty());
        assert_eq!(p.wake_at, Some(minutes(15)));
        let p = plan(cadence, &mut delivery, &queued, minutes(15));
        assert_eq!(p.mails, vec![vec![0, 1, 2]]);
        assert_eq!(
            plan(cadence, &mut delivery, &[], minutes(15)),
            Plan::default()
        );
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_maximum_and_success_resets() {
        let cadence = Cadence::Immediate { max_per_hour: 0 };
        let (initial, max) = (Duration::from_secs(5), Duration::from_secs(20));
        let mut delivery = Delivery::default();
        let now = T0;
        delivery.failed(now, initial, max);
        assert_eq!(delivery.retry_at, Some(now + Duration::from_secs(5)));
        let p = plan(cadence, &mut delivery, &[T0], now + Duration::from_secs(4));
        assert!(p.mails.is_empty(), "backing off");
        assert_eq!(p.wake_at, Some(now + Duration::from_secs(5)));
        delivery.failed(now, initial, max);
        assert_eq!(delivery.retry_at, Some(now + Duration::from_secs(10)));
        delivery.failed(now, initial, max);
        delivery.failed(now, initial, max);
        assert_eq!(
            delivery.retry_at,
            Some(now + Duration::from_secs(20)),
            "capped"
        );
        let p = plan(cadence, &mut delivery, &[T0], now + Duration::from_secs(20));
        assert_eq!(p.mails, vec![vec![0]]);
        delivery.sent(now, 1);
        assert_eq!((delivery.failures, delivery.retry_at), (0, None));
    }
}

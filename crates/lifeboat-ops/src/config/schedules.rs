//! When things run: a source's, a drill's or a check's cron schedule, refused
//! when it has no slot within [`SCHEDULE_HORIZON_YEARS`] (a schedule that
//! never fires would leave its work silently undone), and the time zone its
//! slots are computed in. The daemon's scheduler (`serve/scheduler.rs`)
//! computes the slots.

use std::fmt;

use chrono::{FixedOffset, TimeDelta};
use serde::{Deserialize, Serialize};
/// A schedule must have a slot within this many years of now (checked in
/// UTC; a time zone moves slots by hours, not years). 29 February passes.
pub const SCHEDULE_HORIZON_YEARS: i64 = 5;

/// A validated cron expression (five fields, six with seconds first, or
/// `@hourly`-style aliases) that fires within [`SCHEDULE_HORIZON_YEARS`].
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser.parse(expr).map_err(|e| {
            format!(
                "invalid cron expression {expr:?}: {e}; write five fields \
                 (minute hour day-of-month month day-of-week), e.g. \"0 * * * *\" for hourly, \
                 or six with seconds first"
            )
        })?;
        // A schedule that never fires would leave its source (or drill, or
        // check) silently undone: refuse it like every other value error.
        let now = chrono::Utc::now();
        let horizon = now + TimeDelta::days(SCHEDULE_HORIZON_YEARS * 365);
        match cron.find_next_occurrence(&now, false) {
            Ok(t) if t <= horizon => {}
            _ => {
                return Err(format!(
                    "the cron expression {expr:?} has no slot in the next {SCHEDULE_HORIZON_YEARS} years \
                     (a day that does not exist in its month, such as 31 February, never comes); \
                     fix the day and month fields"
                ));
            }
        }
        Ok(Schedule {
            expr: expr.trim().to_string(),
            cron,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.expr
    }

    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expr)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl Eq for Schedule {}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expr)
    }
}

/// A schedule's time zone: `UTC`, a fixed offset such as `+02:00`, or an
/// IANA name such as `Europe/Berlin` (the chrono-tz database, built in),
/// whose offset follows daylight saving time. Cron slots are computed in the
/// zone's local time (docs/daemon.md, scheduling policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timezone {
    /// UTC or a fixed offset.
    Fixed(FixedOffset),
    /// An IANA time zone.
    Named(chrono_tz::Tz),
}

impl Timezone {
    pub const UTC: Timezone =
        Timezone::Fixed(FixedOffset::east_opt(0).expect("0 is a valid offset"));

    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if matches!(s, "UTC" | "utc" | "Etc/UTC" | "Z" | "GMT" | "Etc/GMT") {
            return Ok(Timezone::UTC);
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => {
                return s.parse::<chrono_tz::Tz>().map(Timezone::Named).map_err(|_| {
                    format!(
                        "unknown time zone {s:?}; use an IANA name like Europe/Berlin (case matters), UTC, or a fixed offset like +02:00"
                    )
                });
            }
        };
        let bad_offset = || {
            format!(
                "invalid time zone offset {s:?}; use a fixed offset like +02:00 (at most ±14:00), UTC, or an IANA name like Europe/Berlin"
            )
        };
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let (h, m): (i32, i32) = match (h.parse(), m.parse()) {
            (Ok(h), Ok(m)) if h <= 14 && m < 60 => (h, m),
            _ => return Err(bad_offset()),
        };
        FixedOffset::east_opt(sign * (h * 3600 + m * 60))
            .map(Timezone::Fixed)
            .ok_or_else(bad_offset)
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timezone::Fixed(o) if o.local_minus_utc() == 0 => f.write_str("UTC"),
            Timezone::Fixed(o) => write!(f, "{o}"),
            Timezone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timezone::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use crate::config::testing::*;
    use crate::config::*;

    #[test]
    fn timezones() {
        // UTC, under its usual spellings.
        for utc in ["UTC", "Etc/UTC", "GMT", "Z"] {
            assert_eq!(Timezone::parse(utc), Ok(Timezone::UTC), "{utc}");
        }
        assert_eq!(Timezone::UTC.to_string(), "UTC");
        // Fixed offsets.
        let fixed = |s: &str| match Timezone::parse(s) {
            Ok(Timezone::Fixed(o)) => o.local_minus_utc(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(fixed("+02:00"), 7200);
        assert_eq!(fixed("-05:30"), -19800);
        assert_eq!(fixed("+00:00"), 0);
        assert_eq!(Timezone::parse("+02:00").unwrap().to_string(), "+02:00");
        assert!(Timezone::parse("+25:00").is_err());
        assert!(Timezone::parse("+02:75").is_err());
        // IANA names.
        assert_eq!(
            Timezone::parse("Europe/Berlin"),
            Ok(Timezone::Named(chrono_tz::Europe::Berlin))
        );
        assert_eq!(
            Timezone::parse(" America/New_York "),
            Ok(Timezone::Named(chrono_tz::America::New_York))
        );
        assert_eq!(
            Timezone::parse("Europe/Berlin").unwrap().to_string(),
            "Europe/Berlin"
        );
        // Unknown names.
        for bad in ["Mars/Olympus_Mons", "Europe/Berlinn", "CEST", ""] {
            let e = Timezone::parse(bad).unwrap_err();
            assert!(e.contains("unknown time zone"), "{bad}: {e}");
        }
    }

    #[test]
    fn timezones_in_the_file() {
        let zone = |tz: &str| {
            let text = format!(
                "repository: {{url: /r}}\nsources:\n  db:\n    kind: kube\n    kube: {{}}\n    schedule: \"0 2 * * *\"\n    timezone: {tz}\n"
            );
            parse(&text, "<string>")
                .unwrap_or_else(|e| panic!("{tz}: {e}"))
                .source("db")
                .unwrap()
                .timezone
        };
        assert_eq!(
            zone("Europe/Berlin"),
            Some(Timezone::Named(chrono_tz::Europe::Berlin))
        );
        assert_eq!(
            zone("\"+02:00\""),
            Some(Timezone::Fixed(FixedOffset::east_opt(7200).unwrap()))
        );
        assert_eq!(zone("UTC"), Some(Timezone::UTC));
        // An unknown name is refused with its line and column.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Atlantis\n",
        );
        assert_eq!(location(&e), (6, 15), "{e}");
        assert!(
            e.to_string()
                .contains("unknown time zone \"Europe/Atlantis\""),
            "{e}"
        );
    }

    #[test]
    fn schedules_that_never_fire_are_refused_where_they_are_written() {
        for (text, line, column) in [
            (
                "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    schedule: \"0 0 31 2 *\"\n",
                6,
                15,
            ),
            (
                "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    drill:\n      namespace_map: {a: b}\n      schedule: \"0 4 30 2 *\"\n",
                8,
                17,
            ),
            (
                "repository: {url: /r}\nserve:\n  check: {schedule: \"0 5 31 4 *\"}\n",
                3,
                21,
            ),
            (
                "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    schedule: \"0 0 0 31 11 *\"\n",
                6,
                15,
            ),
        ] {
            let e = parse_err(text);
            assert_eq!(location(&e), (line, column), "{text}: {e}");
            assert!(
                e.to_string().contains("has no slot in the next 5 years"),
                "{text}: {e}"
            );
        }
        // 29 February comes at least every 8 years; within 5 from now it
        // always does before 2096. Rare but real schedules pass.
        for ok in ["0 0 29 2 *", "0 4 1 1 *", "@yearly", "0 0 31 * *"] {
            Schedule::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // A time zone without a schedule to apply to does nothing either.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Berlin\n",
        );
        assert!(
            e.to_string()
                .contains("sources.db.timezone is set but the source has no schedule"),
            "{e}"
        );
        // A drill schedule is enough.
        parse(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    timezone: Europe/Berlin\n    drill: {schedule: \"0 4 1 * *\", namespace_map: {a: b}}\n",
            "test.yaml",
        )
        .unwrap();
    }
}

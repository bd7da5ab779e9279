//! A source's `retention:` section, read into a [`RetentionPolicy`] with
//! every rule checked where it is written.

use chrono::TimeDelta;
use lifeboat_repo::retention::RetentionPolicy;
use serde::Deserialize;
/// `retention:` as written in the file: the fields of [`RetentionPolicy`],
/// each checked where it is written, so that a rule that would keep nothing
/// (`keep_last: 0`, `keep_within_daily: 0s`), which `forget` and the daemon
/// would silently skip, is refused with its line and column like every
/// other value error (the CLI refuses `--keep-last 0` the same way).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    #[serde(default)]
    keep_last: Option<KeepCount>,
    #[serde(default)]
    keep_hourly: Option<KeepCount>,
    #[serde(default)]
    keep_daily: Option<KeepCount>,
    #[serde(default)]
    keep_weekly: Option<KeepCount>,
    #[serde(default)]
    keep_monthly: Option<KeepCount>,
    #[serde(default)]
    keep_yearly: Option<KeepCount>,
    #[serde(default)]
    keep_within: Option<KeepWindow>,
    #[serde(default)]
    keep_within_hourly: Option<KeepWindow>,
    #[serde(default)]
    keep_within_daily: Option<KeepWindow>,
    #[serde(default)]
    keep_within_weekly: Option<KeepWindow>,
    #[serde(default)]
    keep_within_monthly: Option<KeepWindow>,
    #[serde(default)]
    keep_within_yearly: Option<KeepWindow>,
}

/// A retention count, at least 1.
struct KeepCount(u32);

impl<'de> Deserialize<'de> for KeepCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(KeepCount(n)),
            _ => Err(serde::de::Error::custom(format!(
                "a retention count must be at least 1, not {n}: a rule that keeps no snapshot \
                 keeps nothing at all (remove the key, or give e.g. keep_last: 7)"
            ))),
        }
    }
}

/// A retention window, longer than 0s.
struct KeepWindow(TimeDelta);

impl<'de> Deserialize<'de> for KeepWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let w = lifeboat_repo::retention::parse_duration(&s).map_err(serde::de::Error::custom)?;
        if w <= TimeDelta::zero() {
            return Err(serde::de::Error::custom(format!(
                "a retention window must be longer than 0s, not {s:?}: a window of 0s keeps \
                 nothing (remove the key, or give e.g. keep_within_daily: 30d)"
            )));
        }
        Ok(KeepWindow(w))
    }
}

/// `retention:` of a source: [`RetentionSection`], refused when it has no
/// rule at all (an empty section reads like a policy but keeps nothing, and
/// `forget` would then refuse the source).
pub(super) fn retention_section<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RetentionPolicy>, D::Error> {
    let s = RetentionSection::deserialize(d)?;
    let count = |c: Option<KeepCount>| c.map(|c| c.0);
    let window = |w: Option<KeepWindow>| w.map(|w| w.0);
    let p = RetentionPolicy {
        keep_last: count(s.keep_last),
        keep_hourly: count(s.keep_hourly),
        keep_daily: count(s.keep_daily),
        keep_weekly: count(s.keep_weekly),
        keep_monthly: count(s.keep_monthly),
        keep_yearly: count(s.keep_yearly),
        keep_within: window(s.keep_within),
        keep_within_hourly: window(s.keep_within_hourly),
        keep_within_daily: window(s.keep_within_daily),
        keep_within_weekly: window(s.keep_within_weekly),
        keep_within_monthly: window(s.keep_within_monthly),
        keep_within_yearly: window(s.keep_within_yearly),
    };
    if p.is_empty() {
        return Err(serde::de::Error::custom(
            "the retention section has no rule: give at least one of keep_last, keep_hourly, \
             keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within or \
             keep_within_hourly/daily/weekly/monthly/yearly, or remove retention: to keep everything",
        ));
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use crate::config::testing::*;
    use crate::config::*;

    /// Issue 17: retention rules that keep nothing and schedules that never
    /// fire are refused where they are written, with line and column.
    #[test]
    fn retention_that_keeps_nothing_is_refused_where_it_is_written() {
        let source = |retention: &str| {
            format!(
                "repository: {{url: /r}}\nsources:\n  db:\n    kind: kube\n    kube: {{}}\n    retention:\n{retention}"
            )
        };
        for (rule, column, needle) in [
            ("keep_last: 0", 18, "at least 1, not 0"),
            ("keep_daily: 0", 19, "at least 1, not 0"),
            ("keep_yearly: -1", 20, "at least 1, not -1"),
            ("keep_within: 0s", 20, "longer than 0s, not \"0s\""),
            ("keep_within_daily: 0d", 26, "longer than 0s"),
            ("keep_within_yearly: 0m", 27, "longer than 0s"),
        ] {
            let e = parse_err(&source(&format!("      keep_hourly: 24\n      {rule}\n")));
            assert_eq!(location(&e), (8, column), "{rule}: {e}");
            assert!(e.to_string().contains(needle), "{rule}: {e}");
            assert!(e.to_string().starts_with("test.yaml:8:"), "{rule}: {e}");
        }
        // An empty section is no policy either.
        let e = parse_err(
            "repository: {url: /r}\nsources:\n  db:\n    kind: kube\n    kube: {}\n    retention: {}\n",
        );
        assert_eq!(location(&e).0, 6, "{e}");
        assert!(e.to_string().contains("has no rule"), "{e}");
        // Unknown keys are still refused, with the known ones listed.
        let e = parse_err(&source("      keep_lats: 3\n"));
        assert_eq!(location(&e).0, 7, "{e}");
        assert!(e.to_string().contains("keep_last"), "{e}");
        // Every rule, at its smallest useful value, is accepted.
        let c = parse(
            &source(
                "      keep_last: 1\n      keep_hourly: 1\n      keep_daily: 1\n      keep_weekly: 1\n      keep_monthly: 1\n      keep_yearly: 1\n      keep_within: 1s\n      keep_within_hourly: 1h\n      keep_within_daily: 1d\n      keep_within_weekly: 1w\n      keep_within_monthly: 30d\n      keep_within_yearly: 1y\n",
            ),
            "test.yaml",
        )
        .unwrap();
        let p = c.sources["db"].retention.clone().unwrap();
        assert_eq!(p.keep_last, Some(1));
        assert_eq!(p.keep_yearly, Some(1));
        assert_eq!(p.keep_within, Some(TimeDelta::seconds(1)));
        assert_eq!(p.keep_within_yearly, Some(TimeDelta::days(365)));
    }
}

//! Point-in-time recovery settings and what the server's log says about
//! the outcome. Pure: table-tested.
//!
//! The settings go into `postgresql.auto.conf` of the restored data
//! directory (with `recovery.signal` beside it). `restore_command` is run
//! by the server through `/bin/sh -c`, so every argument is shell-quoted,
//! and the whole command is a configuration string, so it is quoted again
//! for the configuration file's syntax.

use chrono::{DateTime, Utc};

use super::label::Lsn;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The end of the archive.
    Latest,
    Time(DateTime<Utc>),
    Lsn(Lsn),
    /// A transaction id (`xid8`/`txid_current()` form accepted: with epoch).
    Xid(u64),
    /// A restore point made with `pg_create_restore_point(name)`.
    Name(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Latest => write!(f, "the end of the archive"),
            Target::Time(t) => write!(f, "time {}", t.to_rfc3339()),
            Target::Lsn(l) => write!(f, "WAL location {l}"),
            Target::Xid(x) => write!(f, "transaction {x}"),
            Target::Name(n) => write!(f, "restore point {n:?}"),
        }
    }
}

/// `recovery_target_time`'s value (microseconds, UTC).
pub fn time_setting(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// Quotes one argument for `/bin/sh`: `'…'`, a `'` inside as `'\''`.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// A value as a `postgresql.conf` string literal: `'…'` with `'` doubled
/// and `\` escaped.
pub fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// The recovery settings for `target` (`inclusive`: stop after the target
/// rather than before it; PostgreSQL's default is after), with
/// `restore_command` running `restore_argv` (`%f` and `%p` are passed
/// unquoted so that the server substitutes them; its file names need no
/// quoting). The server promotes when it reaches the target.
pub fn settings(
    target: &Target,
    inclusive: bool,
    restore_argv: &[String],
) -> Vec<(String, String)> {
    let command = restore_argv
        .iter()
        .map(|a| {
            if a == "%f" || a == "%p" {
                a.clone()
            } else {
                shell_quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut s = vec![("restore_command".to_string(), command)];
    let t = |k: &str, v: String| (k.to_string(), v);
    match target {
        Target::Latest => {}
        Target::Time(x) => s.push(t("recovery_target_time", time_setting(x))),
        Target::Lsn(l) => s.push(t("recovery_target_lsn", l.to_string())),
        Target::Xid(x) => s.push(t("recovery_target_xid", x.to_string())),
        Target::Name(n) => s.push(t("recovery_target_name", n.clone())),
    }
    if *target != Target::Latest {
        s.push(t("recovery_target_inclusive", inclusive.to_string()));
    }
    s.push(t("recovery_target_timeline", "latest".into()));
    s.push(t("recovery_target_action", "promote".into()));
    s
}

/// The lines added to `postgresql.auto.conf` (later lines win there).
pub fn conf_lines(settings: &[(String, String)]) -> String {
    let mut out = String::from("# lifeboat restore physical: recovery settings\n");
    for (k, v) in settings {
        out.push_str(&format!("{k} = {}\n", conf_quote(v)));
    }
    out
}

/// What the server's log says about how recovery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogVerdict {
    /// The target was reached: PostgreSQL's "recovery stopping …" line.
    Reached(String),
    /// PostgreSQL's FATAL "recovery ended before configured recovery target
    /// was reached": the archive ran out first.
    EndedEarly(String),
    /// Archive recovery completed with no target (the end of the archive).
    Completed,
    /// Neither (yet).
    Unknown,
}

/// Reads the server's log for the outcome of recovery to `target`.
pub fn judge_log(target: &Target, log: &str) -> LogVerdict {
    if let Some(l) = log
        .lines()
        .find(|l| l.contains("recovery ended before configured recovery target was reached"))
    {
        return LogVerdict::EndedEarly(l.trim().to_string());
    }
    let stop = log.lines().find(|l| l.contains("recovery stopping "));
    match (target, stop) {
        (Target::Latest, _) if log.contains("archive recovery complete") => LogVerdict::Completed,
        (Target::Latest, _) => LogVerdict::Unknown,
        (t, Some(line)) if stop_matches(t, line) => LogVerdict::Reached(line.trim().to_string()),
        _ => LogVerdict::Unknown,
    }
}

/// Whether a "recovery stopping" line is about `target`.
fn stop_matches(target: &Target, line: &str) -> bool {
    match target {
        Target::Latest => false,
        Target::Time(_) => line.contains(" transaction ") && line.contains(", time "),
        // PostgreSQL names the record it stopped at, at or after the target.
        Target::Lsn(l) => line
            .split_once("WAL location (LSN) \"")
            .and_then(|(_, rest)| rest.split('"').next())
            .and_then(|x| x.parse::<Lsn>().ok())
            .is_some_and(|at| at >= *l),
        Target::Xid(x) => line.contains(&format!(" of transaction {}", x & 0xffff_ffff)),
        Target::Name(n) => line.contains(&format!("at restore point \"{n}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        for (arg, sh) in [
            ("/usr/bin/lifeboat", "'/usr/bin/lifeboat'"),
            ("/a b/c", "'/a b/c'"),
            ("it's", "'it'\\''s'"),
            ("$(rm -rf /)", "'$(rm -rf /)'"),
        ] {
            assert_eq!(shell_quote(arg), sh);
        }
        assert_eq!(conf_quote("a'b\\c"), "'a''b\\\\c'");
    }

    #[test]
    fn settings_per_target() {
        let argv: Vec<String> = [
            "/bin/lifeboat",
            "--config",
            "/etc/it's.yaml",
            "wal",
            "fetch",
            "%f",
            "%p",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let t: DateTime<Utc> = "2026-12-06T10:46:00.5Z".parse().unwrap();
        // (target, inclusive, the settings written)
        type Case<'a> = (Target, bool, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (Target::Latest, true, vec![]),
            (
                Target::Time(t),
                false,
                vec![
                    ("recovery_target_time", "2026-12-06 10:46:00.500000+00"),
                    ("recovery_target_inclusive", "false"),
                ],
            ),
            (
                Target::Lsn(Lsn(0x3000100)),
                true,
                vec![
                    ("recovery_target_lsn", "0/3000100"),
                    ("recovery_target_inclusive", "true"),
                ],
            ),
            (
                Target::Xid(742),
                true,
                vec![
                    ("recovery_target_xid", "742"),
                    ("recovery_target_inclusive", "true"),
                ],
            ),
            (
                Target::Name("before 'B'".into()),
                true,
                vec![
                    ("recovery_target_name", "before 'B'"),
                    ("recovery_target_inclusive", "true"),
                ],
            ),
        ];
        for (target, inclusive, want) in cases {
            let s = settings(&target, inclusive, &argv);
            assert_eq!(
                s[0],
                (
                    "restore_command".to_string(),
                    "'/bin/lifeboat' '--config' '/etc/it'\\''s.yaml' 'wal' 'fetch' %f %p"
                        .to_string()
                )
            );
            let middle: Vec<(&str, &str)> = s[1..s.len() - 2]
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(middle, want, "{target}");
            assert_eq!(s[s.len() - 1].1, "promote");
            assert_eq!(s[s.len() - 2].1, "latest");
        }
        let lines = conf_lines(&settings(&Target::Name("x'y".into()), true, &argv));
        assert!(lines.contains("recovery_target_name = 'x''y'\n"), "{lines}");
        assert!(
            lines.contains(
                "restore_command = '''/bin/lifeboat'' ''--config'' ''/etc/it''\\\\''''s.yaml''"
            ),
            "{lines}"
        );
    }

    #[test]
    fn log_verdicts() {
        let t: DateTime<Utc> = "2026-12-06T10:46:00Z".parse().unwrap();
        let early = "2026-12-06 10:50:01 UTC [9] FATAL:  recovery ended before configured recovery target was reached\n";
        let time = "LOG:  recovery stopping before commit of transaction 745, time 2026-12-06 10:46:03.1+00\n";
        let lsn = "LOG:  recovery stopping after WAL location (LSN) \"0/3000100\"\n";
        let xid = "LOG:  recovery stopping after commit of transaction 742, time 2026-12-06 10:45:59+00\n";
        let name =
            "LOG:  recovery stopping at restore point \"between\", time 2026-12-06 10:45:59+00\n";
        let latest = "LOG:  redo done at 0/5000060\nLOG:  archive recovery complete\n";
        let cases = [
            (Target::Time(t), early, "early"),
            (Target::Time(t), time, "reached"),
            (Target::Time(t), "", "unknown"),
            (Target::Lsn(Lsn(0x3000100)), lsn, "reached"),
            (Target::Lsn(Lsn(0x3000000)), lsn, "reached"),
            (Target::Lsn(Lsn(0x3000200)), lsn, "unknown"),
            (Target::Xid(742), xid, "reached"),
            (Target::Xid((1 << 32) | 742), xid, "reached"),
            (Target::Xid(743), xid, "unknown"),
            (Target::Name("between".into()), name, "reached"),
            (Target::Name("other".into()), name, "unknown"),
            (Target::Latest, latest, "completed"),
            (Target::Latest, early, "early"),
            (Target::Latest, "LOG:  redo done\n", "unknown"),
        ];
        for (target, log, want) in cases {
            let got = match judge_log(&target, log) {
                LogVerdict::Reached(_) => "reached",
                LogVerdict::EndedEarly(_) => "early",
                LogVerdict::Completed => "completed",
                LogVerdict::Unknown => "unknown",
            };
            assert_eq!(got, want, "{target}: {log}");
        }
    }
}

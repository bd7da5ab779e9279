//! The decisions of `recover postgres` that need no IO (table-tested): is
//! the configured data directory the one the server runs on, is the moment
//! in the past, what the recovery point is, and the names of the
//! directories beside the data directory.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// What the running server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSays {
    /// `data_directory`, canonicalized; `None` when this role may not read
    /// it (it needs superuser or `pg_read_all_settings`).
    pub data_directory: Option<PathBuf>,
    pub system_identifier: u64,
    /// `pg_postmaster_start_time()` in whole seconds since the epoch.
    pub start_epoch: i64,
}

/// What the configured data directory says: `pg_controldata`'s system
/// identifier and `postmaster.pid`'s start time (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSays {
    pub system_identifier: Option<u64>,
    pub postmaster_start: Option<i64>,
}

/// Whether the server runs on the configured `pgdata` (canonicalized), by
/// what both say, never by how the URL is spelled: the directory must hold
/// the server's cluster (system identifier), and the server's
/// `data_directory` must be that directory; when the role may not read
/// `data_directory`, the postmaster that wrote `postmaster.pid` there must
/// have started when the server says it did. `Ok` says which proved it;
/// `Err` says why not, for the refusal.
pub fn is_source_dir(
    configured: &Path,
    server: &ServerSays,
    dir: &DirSays,
) -> Result<&'static str, String> {
    let shown = configured.display();
    match dir.system_identifier {
        None => {
            return Err(format!(
                "{shown} holds no PostgreSQL cluster that pg_controldata can read"
            ));
        }
        Some(id) if id != server.system_identifier => {
            return Err(format!(
                "{shown} holds cluster {id}, but the source's server is cluster {}: that \
                 directory is not this server's",
                server.system_identifier
            ));
        }
        Some(_) => {}
    }
    match (&server.data_directory, dir.postmaster_start) {
        (Some(d), _) if d == configured => Ok("data_directory"),
        (Some(d), _) => Err(format!(
            "the source's server runs on {}, not on the configured pgdata {shown} (a copy of \
             the same cluster): that directory is not this server's",
            d.display()
        )),
        (None, Some(s)) if s == server.start_epoch => Ok("postmaster.pid start time"),
        (None, _) => Err(format!(
            "cannot tell whether the source's server runs on {shown}: it does not show this role \
             its data_directory (grant pg_read_all_settings) and no postmaster.pid there has its \
             start time"
        )),
    }
}

/// The moment must be in the past: recovery "before" a moment that has
/// not come yet would be recovery to the latest point, which is not what
/// was asked.
pub fn check_moment(before: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if before >= now {
        return Err(format!(
            "--before {} is not in the past (now {}); give the moment the damage began",
            before.to_rfc3339(),
            now.to_rfc3339()
        ));
    }
    Ok(())
}

/// `--database DB` must name the source's own database (`own`, its url's):
/// that database's writers and verification queries are the configured
/// ones. Why not, when it is not.
pub fn check_database(source: &str, db: &str, own: &str) -> Result<(), String> {
    if db == own {
        return Ok(());
    }
    Err(format!(
        "--database {db}: source {source} is database {own} (its url); --database names the one \
         database that is recovered and replaced, and it must be the source's, whose writers \
         (quiesce:) and verification queries are configured. To recover another database of \
         this server, configure a source for it (the same server, url …/{db}) and pass that \
         source"
    ))
}

/// The recovery point: the target minus the last commit replayed (the
/// newest the recovered data holds), in seconds, never negative; `None`
/// when no commit was replayed past the base backup.
pub fn rpo_seconds(before: DateTime<Utc>, replay_time: Option<DateTime<Utc>>) -> Option<f64> {
    let t = replay_time?;
    Some(((before - t).num_milliseconds() as f64 / 1000.0).max(0.0))
}

/// `20261204T104700Z`: the suffix of the directories beside `pgdata`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// `<pgdata>.<what>-<stamp>` beside `pgdata`.
pub fn sibling(pgdata: &Path, what: &str, stamp: &str) -> PathBuf {
    let name = pgdata
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pgdata".into());
    pgdata.with_file_name(format!("{name}.{what}-{stamp}"))
}

/// Whether `name` (a file name in `pgdata`'s parent) is a data directory
/// an earlier recovery kept aside: `<pgdata's name>.replaced-<stamp>`.
pub fn is_replaced(pgdata: &Path, name: &str) -> bool {
    is_sibling(pgdata, name, "replaced")
}

/// Whether `name` is [`sibling`]`(pgdata, what, <a stamp>)`'s file name.
fn is_sibling(pgdata: &Path, name: &str, what: &str) -> bool {
    let Some(base) = pgdata.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return false;
    };
    name.strip_prefix(&format!("{base}.{what}-"))
        .is_some_and(|s| s.len() == 16 && s.ends_with('Z') && s.as_bytes()[8] == b'T')
}

/// Whether `name` is a partial restore a recovery left beside `pgdata`
/// (`<pgdata's name>.recovering-<stamp>`).
pub fn is_recovering(pgdata: &Path, name: &str) -> bool {
    is_sibling(pgdata, name, "recovering")
}

/// What an interrupted recovery (`kill -9`, a host crash: nothing could
/// put anything back) left beside `pgdata`, as a refusal that says what to
/// do, or `None` (pure, over the names in `pgdata`'s parent). With `pgdata`
/// gone, the newest kept-aside directory is the server's old data (the kill
/// fell between the two renames of the swap, or after the first); a
/// `.recovering-*` directory is never live data, only a partial restore.
/// `running` names the `.recovering-*` directories a recovery server still
/// runs on, with its pid: a `kill -9` of Lifeboat during the replay leaves
/// its private server running, and it must be stopped before its directory
/// is removed.
pub fn interrupted(
    pgdata: &Path,
    pgdata_exists: bool,
    names: &[String],
    running: &[(String, u32)],
) -> Option<String> {
    pgdata.file_name()?;
    let with = |what: &str| {
        let mut v: Vec<PathBuf> = names
            .iter()
            .filter(|n| is_sibling(pgdata, n, what))
            .map(|n| pgdata.with_file_name(n))
            .collect();
        v.sort();
        v
    };
    let (recovering, replaced) = (with("recovering"), with("replaced"));
    let writers = "bring the writers back (`lifeboat unquiesce --source …`; the quiesce hint \
                   printed at the recovery's start names them)";
    let remove = |dirs: &[PathBuf]| remove_steps(pgdata, dirs, running);
    if !pgdata_exists {
        let Some(old) = replaced.last() else {
            return Some(format!(
                "pgdata {} does not exist and no directory kept aside by a recovery is beside it: \
                 check sources.*.postgres.pgdata",
                pgdata.display()
            ));
        };
        let recovered = if recovering.is_empty() {
            String::new()
        } else {
            format!(
                "; then remove the recovered directory before recovering again: {} (unless you \
                 want it instead of the old one: check it before using it)",
                remove(&recovering)
            )
        };
        return Some(format!(
            "pgdata {} is missing and {} is beside it: a recovery was interrupted during its swap. \
             Put the old data directory back: `mv {} {}`, start the server, {writers}{recovered}; \
             nothing was changed",
            pgdata.display(),
            old.display(),
            old.display(),
            pgdata.display()
        ));
    }
    if recovering.is_empty() {
        return None;
    }
    Some(format!(
        "{} {} left from an interrupted recovery (a partial restore, never the live data): {}; \
         if the source's server is stopped, start it and {writers}; then run the recovery again. \
         Nothing was changed",
        recovering
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        if recovering.len() == 1 { "is" } else { "are" },
        remove(&recovering)
    ))
}

/// What a recovery killed after its swap, before it started the server
/// (or whose start failed with nothing left to put it back), leaves: the
/// recovered cluster in `pgdata`, never started, and the pre-recovery data
/// directory beside it as `<pgdata>.replaced-<stamp>`. The rerun finds the
/// server not answering (`why`); when such a directory is beside `pgdata`,
/// the refusal names both and the two ways on, or `None` (pure, over the
/// names in `pgdata`'s parent). A finished recovery's kept-aside directory
/// looks the same, so the message says "if": only the operator knows
/// whether the server was stopped since.
pub fn not_started(pgdata: &Path, names: &[String], source: &str, why: &str) -> Option<String> {
    let mut replaced: Vec<&String> = names.iter().filter(|n| is_replaced(pgdata, n)).collect();
    replaced.sort();
    let old = pgdata.with_file_name(replaced.last()?);
    let (p, o) = (pgdata.display(), old.display());
    Some(format!(
        "the source's server does not answer ({why}) and {o} is beside {p}: if a recovery was \
         interrupted after its swap, before it started the server, {p} holds the recovered \
         cluster (just before the moment, not verified yet) and {o} is the pre-recovery data \
         directory, untouched. Either finish the recovery: start the server on {p}, check its \
         data, bring the writers back (`lifeboat unquiesce --source {source}`), keep {o} until \
         the recovered server is verified, then remove it (`rm -rf {o}`); or go back to the \
         data as it was: `mv {p} {p}.not-recovered && mv {o} {p}`, start the server, bring the \
         writers back, then remove {p}.not-recovered. Nothing was changed"
    ))
}

/// The steps that remove the partial restores `dirs`: each with the stop
/// of a recovery server still running on it first (`running`, by name; a
/// `kill -QUIT` is an immediate shutdown, all a partial restore needs).
fn remove_steps(pgdata: &Path, dirs: &[PathBuf], running: &[(String, u32)]) -> String {
    let named = |n: &str| dirs.iter().any(|d| d.file_name().is_some_and(|f| f == n));
    let mut steps: Vec<String> = running
        .iter()
        .filter(|(n, _)| named(n))
        .map(|(n, pid)| {
            format!(
                "stop the recovery server still running on {} (`kill -QUIT {pid}`; wait until \
                 process {pid} is gone)",
                pgdata.with_file_name(n).display()
            )
        })
        .collect();
    steps.extend(dirs.iter().map(|d| format!("`rm -rf {}`", d.display())));
    steps.join(", then ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_must_be_the_sources() {
        assert_eq!(check_database("main", "kubernaut", "kubernaut"), Ok(()));
        let e = check_database("main", "other", "kubernaut").unwrap_err();
        assert!(e.contains("source main is database kubernaut"), "{e}");
        assert!(e.contains("url …/other"), "{e}");
        // Names are compared exactly, as PostgreSQL does (quoted identifiers).
        assert!(check_database("main", "Kubernaut", "kubernaut").is_err());
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn leftovers_of_an_interrupted_recovery_say_what_to_do() {
        let p = Path::new("/srv/pg/main");
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none: &[(String, u32)] = &[];
        // Nothing left: nothing to say.
        assert_eq!(
            interrupted(
                p,
                true,
                &n(&["main", "other.recovering-20261204T104703Z"]),
                none
            ),
            None
        );
        // Kept-aside directories of finished recoveries: not a leftover.
        assert_eq!(
            interrupted(
                p,
                true,
                &n(&["main", "main.replaced-20261204T104703Z"]),
                none
            ),
            None
        );
        // Killed before the swap: the partial restore is named, to remove.
        let e = interrupted(
            p,
            true,
            &n(&["main", "main.recovering-20261204T104703Z"]),
            none,
        )
        .unwrap();
        assert!(
            e.contains("rm -rf /srv/pg/main.recovering-20261204T104703Z"),
            "{e}"
        );
        assert!(!e.contains("kill"), "no server to stop: {e}");
        // Killed during the replay: its private server still runs there
        // and is stopped first; a server on another name is not this one's.
        let e = interrupted(
            p,
            true,
            &n(&["main", "main.recovering-20261204T104703Z"]),
            &[
                ("main.recovering-20261204T104703Z".to_string(), 4242),
                ("other.recovering-20261204T104703Z".to_string(), 77),
            ],
        )
        .unwrap();
        let (kill, rm) = (
            e.find("kill -QUIT 4242").expect(&e),
            e.find("rm -rf /srv/pg/main.recovering-20261204T104703Z")
                .expect(&e),
        );
        assert!(kill < rm, "stopped before removed: {e}");
        assert!(!e.contains(" 77"), "{e}");
        // Two partial restores: both named.
        let e = interrupted(
            p,
            true,
            &n(&[
                "main",
                "main.recovering-20261101T000000Z",
                "main.recovering-20261204T104703Z",
            ]),
            none,
        )
        .unwrap();
        assert!(
            e.contains("rm -rf /srv/pg/main.recovering-20261101T000000Z")
                && e.contains("rm -rf /srv/pg/main.recovering-20261204T104703Z")
                && e.contains(" are left"),
            "{e}"
        );
        // Killed between the renames: the newest kept-aside one goes back,
        // and the recovered one is to be removed before the next recovery.
        let e = interrupted(
            p,
            false,
            &n(&[
                "main.replaced-20261101T000000Z",
                "main.replaced-20261204T104703Z",
                "main.recovering-20261204T104703Z",
            ]),
            none,
        )
        .unwrap();
        assert!(
            e.contains("mv /srv/pg/main.replaced-20261204T104703Z /srv/pg/main"),
            "{e}"
        );
        assert!(
            e.contains("rm -rf /srv/pg/main.recovering-20261204T104703Z"),
            "{e}"
        );
        assert!(e.contains("unquiesce"), "{e}");
        // The same without the recovered directory: only the move back.
        let e = interrupted(p, false, &n(&["main.replaced-20261204T104703Z"]), none).unwrap();
        assert!(e.contains("mv ") && !e.contains("rm -rf"), "{e}");
        // Gone with nothing beside it: the configuration is asked about.
        let e = interrupted(p, false, &n(&["other"]), none).unwrap();
        assert!(e.contains("sources.*.postgres.pgdata"), "{e}");
    }

    #[test]
    fn a_recovery_killed_before_its_server_started_is_named() {
        let p = Path::new("/srv/pg/main");
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Nothing kept aside: only the connection error, said elsewhere.
        assert_eq!(
            not_started(
                p,
                &n(&["main", "other.replaced-20261204T104703Z"]),
                "main",
                "refused"
            ),
            None
        );
        let e = not_started(
            p,
            &n(&[
                "main",
                "main.replaced-20261101T000000Z",
                "main.replaced-20261204T104703Z",
            ]),
            "db1",
            "connection refused",
        )
        .unwrap();
        // The newest kept-aside directory, what each one is, both ways on.
        assert!(e.contains("connection refused"), "{e}");
        assert!(
            e.contains("/srv/pg/main.replaced-20261204T104703Z is the pre-recovery data directory"),
            "{e}"
        );
        assert!(
            e.contains("/srv/pg/main holds the recovered cluster"),
            "{e}"
        );
        assert!(
            e.contains("rm -rf /srv/pg/main.replaced-20261204T104703Z") && e.contains("verified"),
            "{e}"
        );
        assert!(
            e.contains(
                "mv /srv/pg/main /srv/pg/main.not-recovered && \
                 mv /srv/pg/main.replaced-20261204T104703Z /srv/pg/main"
            ),
            "{e}"
        );
        assert!(e.contains("unquiesce --source db1"), "{e}");
        assert!(!e.contains("20261101"), "only the newest: {e}");
    }

    #[test]
    fn directory_by_what_the_server_says() {
        let p = Path::new("/var/lib/postgresql/15/main");
        let server = |dir: Option<&str>| ServerSays {
            data_directory: dir.map(PathBuf::from),
            system_identifier: 7,
            start_epoch: 100,
        };
        let dir = |id: Option<u64>, start: Option<i64>| DirSays {
            system_identifier: id,
            postmaster_start: start,
        };
        let main = Some("/var/lib/postgresql/15/main");
        assert_eq!(
            is_source_dir(p, &server(main), &dir(Some(7), Some(100))),
            Ok("data_directory")
        );
        // data_directory decides when it is readable, even with a start
        // time that matches (a copy started in the same second).
        let e = is_source_dir(p, &server(Some("/srv/copy")), &dir(Some(7), Some(100))).unwrap_err();
        assert!(
            e.contains("/srv/copy") && e.contains("not this server's"),
            "{e}"
        );
        // Another cluster in the directory.
        let e = is_source_dir(p, &server(main), &dir(Some(8), Some(100))).unwrap_err();
        assert!(e.contains("cluster 8"), "{e}");
        let e = is_source_dir(p, &server(main), &dir(None, None)).unwrap_err();
        assert!(e.contains("no PostgreSQL cluster"), "{e}");
        // Without data_directory: the postmaster's start time.
        assert_eq!(
            is_source_dir(p, &server(None), &dir(Some(7), Some(100))),
            Ok("postmaster.pid start time")
        );
        for start in [Some(99), None] {
            let e = is_source_dir(p, &server(None), &dir(Some(7), start)).unwrap_err();
            assert!(e.contains("pg_read_all_settings"), "{e}");
        }
    }

    #[test]
    fn moments_in_the_past_only() {
        let now = t("2026-12-04T10:50:00Z");
        assert!(check_moment(t("2026-12-04T10:47:00Z"), now).is_ok());
        assert!(check_moment(now, now).is_err());
        assert!(check_moment(t("2026-12-04T11:00:00Z"), now).is_err());
    }

    #[test]
    fn recovery_point() {
        let before = t("2026-12-04T10:47:00Z");
        assert_eq!(
            rpo_seconds(before, Some(t("2026-12-04T10:46:58.5Z"))),
            Some(1.5)
        );
        assert_eq!(rpo_seconds(before, None), None);
        // A clock skew between servers never makes it negative.
        assert_eq!(
            rpo_seconds(before, Some(t("2026-12-04T10:47:01Z"))),
            Some(0.0)
        );
    }

    #[test]
    fn names_beside_the_data_directory() {
        let p = Path::new("/srv/pg/main");
        let s = stamp(t("2026-12-04T10:47:03Z"));
        assert_eq!(s, "20261204T104703Z");
        assert_eq!(
            sibling(p, "replaced", &s),
            Path::new("/srv/pg/main.replaced-20261204T104703Z")
        );
        assert!(is_replaced(p, "main.replaced-20261204T104703Z"));
        assert!(!is_replaced(p, "main.recovering-20261204T104703Z"));
        assert!(!is_replaced(p, "other.replaced-20261204T104703Z"));
        assert!(!is_replaced(p, "main.replaced-x"));
        assert!(!is_replaced(p, "main"));
    }
}

//! The data directory's side of `recover postgres`: the server stopped and
//! started with its configured control (`lifeboat_region`'s
//! [`StandbyTarget::start`]/[`StandbyTarget::stop`], as the region agents
//! do), the recovered directory swapped in by two renames in one parent
//! directory (so no byte is copied and the old directory is never
//! modified), put back on failure, and the directories kept aside dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::replication::target::{ServerControl, StandbyTarget, default_passfile};

use super::plan;
use crate::error::{FAILURE, Result, fail};

/// How long the server may take to stop (fast shutdown: a checkpoint) and
/// to start (the recovered directory starts from a shutdown checkpoint;
/// the old one too).
const STOP_TIMEOUT: Duration = Duration::from_secs(600);
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// The source's server, as its configured control starts and stops it.
pub struct Server {
    target: StandbyTarget,
}

impl Server {
    pub fn new(
        name: &str,
        pgdata: &Path,
        bin_dir: PathBuf,
        conn: ConnConfig,
        control: ServerControl,
    ) -> Self {
        Server {
            target: StandbyTarget {
                name: name.to_string(),
                pgdata: pgdata.to_path_buf(),
                bin_dir,
                os_user: None,
                conn,
                control,
                settings: Vec::new(),
                passfile: default_passfile(pgdata),
            },
        }
    }

    /// Stops it (`pg_ctl stop -m fast`, or the unit's stop).
    pub async fn stop(&self) -> Result<()> {
        self.target
            .stop(STOP_TIMEOUT)
            .await
            .map_err(|e| fail(FAILURE, format!("stopping the source's server: {e}")))
    }

    /// Starts it (`pg_ctl start -w`, or the unit's start).
    pub async fn start(&self) -> Result<()> {
        self.target
            .start(START_TIMEOUT)
            .await
            .map_err(|e| fail(FAILURE, format!("starting the source's server: {e}")))
    }

    /// Whether a postmaster runs on the data directory now (its
    /// `postmaster.pid` names a live process).
    pub fn running(&self) -> bool {
        std::fs::read_to_string(self.target.pgdata.join("postmaster.pid"))
            .ok()
            .and_then(|t| lifeboat_region::replication::target::parse_postmaster_pid(&t))
            .is_some_and(|(pid, ..)| pid > 0 && Path::new(&format!("/proc/{pid}")).exists())
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> crate::Error {
    move |e| fail(FAILURE, format!("{what}: {e}"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("fsync {}", dir.display())))
}

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("/"))
}

/// `pgdata` renamed to `aside`, then `recovered` to `pgdata`. When the
/// second rename fails the first is undone.
pub fn swap_in(pgdata: &Path, recovered: &Path, aside: &Path) -> Result<()> {
    std::fs::rename(pgdata, aside).map_err(io(format!(
        "moving {} aside to {}",
        pgdata.display(),
        aside.display()
    )))?;
    test_pause("swap");
    if let Err(e) = std::fs::rename(recovered, pgdata) {
        let undo = std::fs::rename(aside, pgdata);
        return Err(fail(
            FAILURE,
            format!(
                "moving the recovered directory {} to {}: {e}{}",
                recovered.display(),
                pgdata.display(),
                match undo {
                    Ok(()) => String::new(),
                    Err(u) => format!(
                        "; moving the old directory back failed too ({u}): it is {}",
                        aside.display()
                    ),
                }
            ),
        ));
    }
    sync_dir(parent(pgdata))?;
    test_pause("swapped");
    Ok(())
}

/// A pause point for tests of a recovery killed at its most fragile
/// moment: with `LIFEBOAT_TEST_RECOVER_PAUSE=<point>:<fifo>`, at `<point>`
/// (`swap`: `pgdata` moved aside, the recovered directory not yet in its
/// place; `swapped`: both renames done and synced, the server not started
/// yet) the recovery reads the FIFO `<fifo>`, which blocks until a writer
/// opens it and then closes it (the test sees the reader, and kills the
/// process). Unset (always, outside tests) it costs one environment
/// lookup.
fn test_pause(point: &str) {
    let Ok(spec) = std::env::var("LIFEBOAT_TEST_RECOVER_PAUSE") else {
        return;
    };
    if let Some((at, fifo)) = spec.split_once(':')
        && at == point
    {
        tracing::warn!(
            point,
            fifo,
            "test pause point reached (LIFEBOAT_TEST_RECOVER_PAUSE): reading the FIFO"
        );
        let _ = std::fs::read(fifo);
    }
}

/// Undoes [`swap_in`] (when `swapped`) and removes the recovered
/// directory: the old data directory is `pgdata` again, untouched.
pub fn put_back(pgdata: &Path, recovered: &Path, aside: &Path, swapped: bool) -> Result<()> {
    if swapped {
        std::fs::rename(pgdata, recovered).map_err(io(format!(
            "moving the recovered directory {} out of the way",
            pgdata.display()
        )))?;
        std::fs::rename(aside, pgdata).map_err(io(format!(
            "moving the old data directory {} back to {}",
            aside.display(),
            pgdata.display()
        )))?;
    }
    match std::fs::remove_dir_all(recovered) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %recovered.display(), error = %e, "removing the failed recovery's directory");
        }
        _ => {}
    }
    sync_dir(parent(pgdata))
}

/// Removes every directory an earlier (or this) recovery kept aside
/// beside `pgdata` (`<pgdata>.replaced-<stamp>`); returns them.
pub fn drop_replaced(pgdata: &Path) -> Result<Vec<PathBuf>> {
    let dir = parent(pgdata);
    let mut dropped = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if plan::is_replaced(pgdata, &name) && e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            std::fs::remove_dir_all(&p).map_err(io(format!("removing {}", p.display())))?;
            dropped.push(p);
        }
    }
    dropped.sort();
    Ok(dropped)
}

/// The room a recovered copy of `bytes` of files needs: 10 % more, at
/// least 64 MiB more (the WAL replayed and the new timeline's segments).
pub fn room_needed(bytes: u64) -> u64 {
    bytes.saturating_add((bytes / 10).max(64 << 20))
}

/// The checks a swap needs before anything is stopped: `pgdata` is not a
/// mount point (a rename cannot move it; point `pgdata` at a directory
/// inside the volume), and its parent has room for the recovered copy
/// (`bytes` plus 10 %, at least 64 MiB).
pub fn check_room(pgdata: &Path, bytes: u64) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &Path| {
        std::fs::metadata(p).map_err(|e| crate::error::usage(format!("{}: {e}", p.display())))
    };
    let (d, p) = (meta(pgdata)?, meta(parent(pgdata))?);
    if d.dev() != p.dev() {
        return Err(crate::error::usage(format!(
            "pgdata {} is a mount point: the recovered directory is swapped in by renaming \
             beside it, which cannot move a mount point; set pgdata to a directory inside the \
             volume (e.g. PGDATA=/var/lib/postgresql/data/pgdata). Nothing was changed",
            pgdata.display()
        )));
    }
    let needed = room_needed(bytes);
    let available = lifeboat_postgres::dump::free_space(parent(pgdata))
        .map_err(|e| fail(FAILURE, e.to_string()))?;
    if available < needed {
        return Err(crate::error::usage(format!(
            "not enough free space beside {} for the recovered data directory: {needed} bytes \
             needed (the base backup's files plus a margin), {available} available. Nothing was \
             changed; free space there (old directories kept aside by earlier recoveries are \
             removed by --drop-replaced)",
            pgdata.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_the_files_plus_a_margin() {
        assert_eq!(room_needed(0), 64 << 20);
        assert_eq!(room_needed(100 << 20), (100 << 20) + (64 << 20));
        assert_eq!(room_needed(10 << 30), (10 << 30) + (1 << 30));
        assert_eq!(room_needed(u64::MAX), u64::MAX);
    }

    #[test]
    fn swap_and_put_back_keep_the_old_directory() {
        let t = tempfile::tempdir().unwrap();
        let pgdata = t.path().join("main");
        let new = t.path().join("main.recovering-x");
        let aside = t.path().join("main.replaced-20261204T104703Z");
        std::fs::create_dir(&pgdata).unwrap();
        std::fs::write(pgdata.join("old"), b"old").unwrap();
        std::fs::create_dir(&new).unwrap();
        std::fs::write(new.join("new"), b"new").unwrap();
        swap_in(&pgdata, &new, &aside).unwrap();
        assert!(pgdata.join("new").exists() && aside.join("old").exists());
        put_back(&pgdata, &new, &aside, true).unwrap();
        assert_eq!(std::fs::read(pgdata.join("old")).unwrap(), b"old");
        assert!(!new.exists() && !aside.exists());

        // Kept aside, then dropped; other names stay.
        std::fs::create_dir(&new).unwrap();
        swap_in(&pgdata, &new, &aside).unwrap();
        std::fs::create_dir(t.path().join("main.replaced-note")).unwrap();
        assert_eq!(drop_replaced(&pgdata).unwrap(), vec![aside.clone()]);
        assert!(!aside.exists() && t.path().join("main.replaced-note").exists());
    }

    #[test]
    fn a_failed_second_rename_is_undone() {
        let t = tempfile::tempdir().unwrap();
        let pgdata = t.path().join("main");
        std::fs::create_dir(&pgdata).unwrap();
        let aside = t.path().join("main.replaced-20261204T104703Z");
        let e = swap_in(&pgdata, &t.path().join("missing"), &aside).unwrap_err();
        assert!(e.message.contains("missing"), "{}", e.message);
        assert!(pgdata.exists() && !aside.exists());
    }
}

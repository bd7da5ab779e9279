//! A standby seeded by `lifeboat region replicate` in a test: its empty
//! data directory, owned by the server's OS user, and stopping its server
//! (fast on request, immediate when the test ends however it ends).

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_region::replication::target::os_user;

/// An empty directory (and its parent) owned by the server's OS user, for
/// the standby's data.
pub fn empty_owned_dir(parent: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = parent.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    if let Some((uid, gid)) = os_user(None).unwrap() {
        std::os::unix::fs::chown(parent, Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
    }
    d
}

/// The seeded standby's server: `bin` holds `pg_ctl`.
pub struct SeededStandby {
    pub bin: PathBuf,
    pub pgdata: PathBuf,
}

impl SeededStandby {
    /// The guard of `p`'s server once a test runs it under `pg_ctl` (a
    /// switchover or a rejoin restarts it there). `TempCluster` passes its
    /// port and socket directory on the command line; they are written
    /// into `postgresql.auto.conf`, with `extra` settings, so a start under
    /// `pg_ctl` uses them too.
    pub fn for_cluster(p: &lifeboat_postgres::TempCluster, extra: &[(&str, &str)]) -> Self {
        use std::io::Write as _;
        let mut auto = std::fs::OpenOptions::new()
            .append(true)
            .open(p.data_dir().join("postgresql.auto.conf"))
            .unwrap();
        writeln!(
            auto,
            "port = {}\nunix_socket_directories = '{}'",
            p.port(),
            p.socket_dir().display()
        )
        .unwrap();
        for (k, v) in extra {
            writeln!(auto, "{k} = {v}").unwrap();
        }
        SeededStandby {
            bin: p.bin_dir().to_path_buf(),
            pgdata: p.data_dir(),
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> Option<std::process::Output> {
        if !self.pgdata.join("postmaster.pid").exists() {
            return None;
        }
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", mode, "-w"])
            .current_dir("/");
        if let Ok(Some((uid, gid))) = os_user(None) {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(gid);
        }
        Some(cmd.output().expect("pg_ctl stop"))
    }

    /// Stops the server (fast shutdown); fails the test when it cannot.
    pub fn stop(&self) {
        self.stop_with("fast")
    }

    /// Stops the server at once (immediate shutdown: a lost region), its
    /// directory left as it is; fails the test when it cannot.
    pub fn stop_now(&self) {
        self.stop_with("immediate")
    }

    fn stop_with(&self, mode: &str) {
        if let Some(out) = self.pg_ctl_stop(mode) {
            assert!(
                out.status.success(),
                "pg_ctl stop: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for SeededStandby {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop("immediate");
    }
}

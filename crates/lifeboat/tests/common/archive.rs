//! A repository that a real PostgreSQL archives into through the built
//! binary (`archive_command = 'lifeboat --config C wal push %p'`, run by
//! the server as `postgres`, the repository opened with a key file), and
//! the helpers the physical-backup tests share: one SQL value, waiting for
//! a segment to be archived, switching segments, the labels of a restored
//! data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lifeboat_postgres::TempCluster;
use lifeboat_postgres::basebackup::server::RecoveryServer;

use super::{Env, bin, poll, rt};

/// A repository opened with a key file, configured for `wal push` run by
/// the server as `postgres` (`archive_command`), and the server's password
/// for the commands that connect to it.
pub struct Archive {
    pub env: Env,
    pub config: PathBuf,
    pub password: String,
}

pub fn chown_postgres(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(st.success(), "chown -R postgres {}", path.display());
}

impl Archive {
    pub fn new() -> Archive {
        let env = Env::init();
        let key_file = env.path("wal.key");
        env.ok(&["key", "add", "--new-key-file", key_file.to_str().unwrap()]);
        let config = env.path("lifeboat.yaml");
        std::fs::write(
            &config,
            format!(
                "repository:\n  url: {}\n  key_file: {}\n",
                env.repo,
                key_file.display()
            ),
        )
        .unwrap();
        chown_postgres(env.dir.path());
        Archive {
            env,
            config,
            password: String::new(),
        }
    }

    pub fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.run_env(args, &[])
    }

    /// [`Archive::run`] with `env` added to the command's environment.
    pub fn run_env(
        &self,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Option<i32>, String, String) {
        let mut c = Command::new(bin());
        c.arg("--config").arg(&self.config).args(args);
        for v in [
            "LIFEBOAT_PASSWORD",
            "LIFEBOAT_REPO",
            "LIFEBOAT_CONFIG",
            "LIFEBOAT_KEY_FILE",
            "LIFEBOAT_PASSWORD_FILE",
        ] {
            c.env_remove(v);
        }
        c.env("PGPASSWORD", &self.password);
        c.envs(env.iter().copied());
        c.current_dir(self.env.dir.path()).stdin(Stdio::null());
        let o = c.output().expect("run lifeboat");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Runs `args`, which must succeed; their standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, Some(0), "{args:?}\nstdout: {out}\nstderr: {err}");
        out
    }

    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(&a);
        assert_eq!(code, Some(0), "{args:?}\nstdout: {out}\nstderr: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    pub fn archive_command(&self) -> String {
        format!(
            "{} --config {} wal push %p",
            bin().display(),
            self.config.display()
        )
    }
}

/// Runs `sql` and returns the first column of the first row as text.
pub fn one(rt: &tokio::runtime::Runtime, cluster: &TempCluster, sql: &str) -> String {
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        let rows = c.simple_query(sql).await.unwrap();
        rows.iter()
            .find_map(|m| match m {
                lifeboat_postgres::basebackup::SimpleQueryMessage::Row(r) => {
                    r.get(0).map(str::to_string)
                }
                _ => None,
            })
            .unwrap_or_default()
    })
}

pub fn wait_archived(rt: &tokio::runtime::Runtime, cluster: &TempCluster, last: &str) {
    poll(
        Duration::from_secs(120),
        &format!("{last} archived"),
        || {
            let failed = one(rt, cluster, "SELECT failed_count FROM pg_stat_archiver");
            assert_eq!(
                failed,
                "0",
                "archiving failed; server log:\n{}",
                cluster.log_tail()
            );
            let archived = one(
                rt,
                cluster,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            );
            (archived.as_str() >= last).then_some(())
        },
    );
}

/// Switches to a new WAL segment and waits until the one just completed
/// is archived; returns its name.
pub fn switch_and_archive(rt: &tokio::runtime::Runtime, cluster: &TempCluster) -> String {
    let name = one(rt, cluster, "SELECT pg_walfile_name(pg_switch_wal())");
    wait_archived(rt, cluster, &name);
    name
}

/// The labels in `table` of a restored data directory, read from a
/// server started on it as a primary (which also proves it starts).
pub fn labels(dir: &Path, table: &str) -> Vec<String> {
    let server = RecoveryServer::start(Path::new("/usr/lib/postgresql/15/bin"), dir, &[])
        .expect("start a server on the restored directory");
    let rt = rt();
    let got = poll(Duration::from_secs(60), "the restored server", || {
        rt.block_on(async {
            let c = server
                .conn_config("lifeboat", "postgres")
                .connect()
                .await
                .ok()?;
            let rows = c
                .query(&format!("SELECT label FROM {table} ORDER BY id"), &[])
                .await
                .ok()?;
            Some(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    });
    let mut server = server;
    assert!(
        server.stop(Duration::from_secs(60)),
        "{}",
        server.log_tail()
    );
    got
}

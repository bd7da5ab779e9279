//! A temporary directory a throwaway server recovers in: `drill
//! --physical`'s and `recover postgres --database`'s side server
//! ([`ScratchDir`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_postgres::basebackup::server::{RecoveryServer, chown_tree, server_owner};

use crate::error::{FAILURE, Result, fail};

/// The temporary directory a physical drill recovers in, and the server
/// running on it once recovery is over. Dropped (the drill was abandoned):
/// the server is stopped first (immediate shutdown, `RecoveryServer`'s
/// drop), then the directory removed. A server still recovering lives in
/// the recovery's future, created after this and so dropped before it.
pub struct ScratchDir {
    // Field order is drop order: the server before the directory.
    server: Option<RecoveryServer>,
    dir: tempfile::TempDir,
}

impl ScratchDir {
    /// A new directory under the temporary directory (`TMPDIR`), owned by
    /// the server's user (it must reach the data directory inside).
    pub fn create() -> Result<Self> {
        Self::create_in(&std::env::temp_dir(), "lifeboat-drill-", "set TMPDIR to")
    }

    /// A new directory `<prefix>…` in `parent`, owned by the server's user
    /// (`recover postgres --database` runs its side server in one); `hint`
    /// says how to choose another parent ("pass --side-dir").
    pub fn create_in(parent: &Path, prefix: &str, hint: &str) -> Result<Self> {
        let io = |e: std::io::Error| {
            fail(
                FAILURE,
                format!(
                    "creating a temporary directory in {}: {e} ({hint} a directory with room for \
                     the data directory)",
                    parent.display()
                ),
            )
        };
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(io)?;
        let owner = server_owner().map_err(|e| fail(FAILURE, e.to_string()))?;
        chown_tree(dir.path(), owner).map_err(|e| fail(FAILURE, e.to_string()))?;
        Ok(ScratchDir { server: None, dir })
    }

    /// The data directory inside (absent until written).
    pub fn pgdata(&self) -> PathBuf {
        self.dir.path().join("pgdata")
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps `server` (running on [`Self::pgdata`]) until [`Self::remove`]
    /// or the drop, which stop it before the directory goes.
    pub fn keep(&mut self, server: RecoveryServer) -> &RecoveryServer {
        self.server.insert(server)
    }

    /// Stops the server (fast shutdown) and removes the directory; says
    /// what was done. A failure here does not fail the drill.
    pub async fn remove(self) -> String {
        let ScratchDir { server, dir } = self;
        let stopped = match server {
            Some(mut s) => {
                let clean = tokio::task::spawn_blocking(move || s.stop(Duration::from_secs(300)))
                    .await
                    .unwrap_or(false);
                if clean {
                    "the recovered server was stopped"
                } else {
                    "the recovered server did not stop cleanly and was killed"
                }
            }
            None => "no server was left running",
        };
        let path = dir.path().display().to_string();
        let removed = tokio::task::spawn_blocking(move || dir.close())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        match removed {
            Ok(()) => format!("{stopped}; the temporary data directory {path} was removed"),
            Err(e) => format!(
                "{stopped}; removing the temporary data directory {path} failed: {e}; remove it \
                 by hand"
            ),
        }
    }
}

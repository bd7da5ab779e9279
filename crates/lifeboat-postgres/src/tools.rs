//! Finding `pg_dump`, `pg_restore` and `psql` that fit the server.
//!
//! pg_dump refuses to dump a server newer than itself ("server version mismatch"),
//! while a newer pg_dump dumps older servers fine. So the rule is: the exact major
//! version of the server if it exists anywhere we look, else the lowest newer major,
//! else a clear refusal saying which package to install.
//!
//! Places looked at, in order (the first directory with an exact-major `pg_dump`
//! wins): `/usr/lib/postgresql/<major>/bin` (Debian/Ubuntu's versioned layout),
//! every directory of `PATH`, the directory configured by the operator; then, for a
//! newer client, the other `/usr/lib/postgresql/*/bin`. Each candidate's version
//! is read from `pg_dump --version`, never guessed from its path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors of tool discovery.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error(
        "no pg_dump/pg_restore for PostgreSQL {server_major} found (looked in {looked}); \
         install postgresql-client-{server_major}: apt-get install postgresql-client-{server_major} \
         (from the PGDG apt repository if the distribution lacks it), or configure the directory \
         that holds its pg_dump"
    )]
    NotFound { server_major: u32, looked: String },
    #[error(
        "the server runs PostgreSQL {server_major} but only older client tools were found \
         ({found}), and pg_dump cannot dump a newer server; install postgresql-client-{server_major}: \
         apt-get install postgresql-client-{server_major} (from the PGDG apt repository if the \
         distribution lacks it), or configure the directory that holds its pg_dump"
    )]
    TooOld { server_major: u32, found: String },
    #[error("running {program} --version: {source}")]
    Version {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot understand the version printed by {program}: {output:?}")]
    UnparsableVersion { program: PathBuf, output: String },
}

/// Where discovery looks. `Default` is the real system: `/usr/lib/postgresql`, the
/// process's `PATH`, no configured directory.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// Root of the versioned layout (`<root>/<major>/bin`).
    pub versioned_root: PathBuf,
    /// The search path; `None` = no PATH search.
    pub path: Option<OsString>,
    /// An operator-configured directory holding `pg_dump` and `pg_restore`.
    pub configured_dir: Option<PathBuf>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            versioned_root: PathBuf::from("/usr/lib/postgresql"),
            path: std::env::var_os("PATH"),
            configured_dir: None,
        }
    }
}

/// A client tool version as printed by `--version`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolVersion {
    /// Major version (15 for 15.14; 9 for 9.6.x, which is refused anyway).
    pub major: u32,
    /// The full first line, e.g. `pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb13u1)`.
    pub text: String,
}

/// The chosen client tools. `pg_dump` and `pg_restore` come from the same directory
/// and have the same major version; `psql` is there when installed.
#[derive(Clone, Debug)]
pub struct PgTools {
    pub dir: PathBuf,
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub psql: Option<PathBuf>,
    pub version: ToolVersion,
}

/// Major version from `server_version_num` (150014 → 15; 90624 → 9).
pub fn server_major(server_version_num: i64) -> u32 {
    (server_version_num / 10_000).max(0) as u32
}

/// Parses the first line of `pg_dump --version` (`pg_dump (PostgreSQL) 15.14 (...)`).
pub fn parse_version_output(output: &str) -> Option<ToolVersion> {
    let line = output.lines().next()?.trim();
    let after = line.split_once("(PostgreSQL)").map(|x| x.1).unwrap_or(line);
    let num = after
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let major: u32 = num
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(ToolVersion {
        major,
        text: line.to_string(),
    })
}

/// The names of Lifeboat's own environment every child process inherits:
/// `PATH`, `LANG`, `LC_*` and `TZ` (where programs are, how they speak and
/// print times). Nothing else: not `LIFEBOAT_PASSWORD`, the API token, cloud
/// credentials (`AWS_*`), `KUBECONFIG` or `HOME`. A child that needs more is
/// given it by name ([`child_command`]'s callers; quiesce commands' `env:`).
/// The policy is documented in `docs/postgres.md` ("Child processes").
pub fn is_inherited_name(name: &str) -> bool {
    matches!(name, "PATH" | "LANG" | "TZ") || name.starts_with("LC_")
}

/// The `(name, value)` pairs of Lifeboat's environment that [`is_inherited_name`]
/// lets through, plus the variables named in `extra` that are set (names
/// only; values always come from Lifeboat's own environment).
pub fn child_env<S: AsRef<str>>(extra: &[S]) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| {
            k.to_str()
                .is_some_and(|k| is_inherited_name(k) || extra.iter().any(|e| e.as_ref() == k))
        })
        .collect()
}

/// A command for `program` (a pg tool, or any child of Lifeboat) whose
/// environment is cleared and refilled with [`child_env`] only. Callers add
/// what the child needs (for pg tools: the `PG*` variables of
/// `ConnConfig::apply_to_command`). Every child process of this crate is
/// made here.
pub fn child_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(child_env::<&str>(&[]));
    cmd
}

/// Runs `<program> --version` and parses it.
pub fn tool_version(program: &Path) -> Result<ToolVersion, ToolsError> {
    let out = child_command(program)
        .arg("--version")
        .output()
        .map_err(|e| ToolsError::Version {
            program: program.to_path_buf(),
            source: e,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    parse_version_output(&text).ok_or_else(|| ToolsError::UnparsableVersion {
        program: program.to_path_buf(),
        output: text,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn candidate(dir: &Path) -> Option<Result<PgTools, ToolsError>> {
    let pg_dump = dir.join("pg_dump");
    let pg_restore = dir.join("pg_restore");
    if !is_executable(&pg_dump) || !is_executable(&pg_restore) {
        return None;
    }
    let psql = Some(dir.join("psql")).filter(|p| is_executable(p));
    Some(tool_version(&pg_dump).map(|version| PgTools {
        dir: dir.to_path_buf(),
        pg_dump,
        pg_restore,
        psql,
        version,
    }))
}

/// Chooses the client tools for a server of major version `server_major` (see the
/// module docs for the order and the rule).
pub fn discover(server_major: u32, opts: &Discovery) -> Result<PgTools, ToolsError> {
    let mut dirs: Vec<PathBuf> = vec![
        opts.versioned_root
            .join(server_major.to_string())
            .join("bin"),
    ];
    if let Some(path) = &opts.path {
        dirs.extend(std::env::split_paths(path));
    }
    if let Some(d) = &opts.configured_dir {
        dirs.push(d.clone());
    }
    // Newer majors in the versioned layout, lowest first.
    let mut others: Vec<(u32, PathBuf)> = std::fs::read_dir(&opts.versioned_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let m: u32 = e.file_name().to_str()?.parse().ok()?;
            (m != server_major).then(|| (m, e.path().join("bin")))
        })
        .collect();
    others.sort();
    dirs.extend(others.into_iter().map(|(_, d)| d));

    let mut seen = std::collections::HashSet::new();
    let mut found: Vec<PgTools> = Vec::new();
    for dir in dirs {
        let key = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        if !seen.insert(key) {
            continue;
        }
        match candidate(&dir) {
            None => {}
            Some(Ok(t)) if t.version.major == server_major => return Ok(t),
            Some(Ok(t)) => found.push(t),
            Some(Err(e)) => tracing::warn!(dir = %dir.display(), error = %e, "skipping pg tools"),
        }
    }
    if let Some(newer) = found
        .iter()
        .filter(|t| t.version.major > server_major)
        .min_by_key(|t| t.version.major)
    {
        tracing::info!(
            server_major,
            client = %newer.version.text,
            "no client of the server's major version; using a newer one"
        );
        return Ok(newer.clone());
    }
    if !found.is_empty() {
        let list = found
            .iter()
            .map(|t| format!("pg_dump {} in {}", t.version.major, t.dir.display()))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ToolsError::TooOld {
            server_major,
            found: list,
        });
    }
    let mut looked = vec![format!(
        "{}/{server_major}/bin",
        opts.versioned_root.display()
    )];
    if opts.path.is_some() {
        looked.push("PATH".into());
    }
    if let Some(d) = &opts.configured_dir {
        looked.push(d.display().to_string());
    }
    Err(ToolsError::NotFound {
        server_major,
        looked: looked.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v =
            parse_version_output("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb13u1)\n").unwrap();
        assert_eq!(v.major, 15);
        assert_eq!(
            parse_version_output("pg_dump (PostgreSQL) 16beta2")
                .unwrap()
                .major,
            16
        );
        assert_eq!(
            parse_version_output("pg_dump (PostgreSQL) 9.6.24")
                .unwrap()
                .major,
            9
        );
        assert!(parse_version_output("garbage").is_none());
        assert_eq!(server_major(150014), 15);
        assert_eq!(server_major(160001), 16);
    }
}

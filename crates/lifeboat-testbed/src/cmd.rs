//! Running the system tools the bed drives (`ip`, `iptables`, `tc`), always
//! as argument vectors, and finding them.

use std::path::PathBuf;

use crate::BedError;

/// Where a tool is: `PATH`, then the sbin directories (root's tools live there
/// and a CI environment's `PATH` may lack them).
pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The tool's path, or an error naming its Debian package and scripts/test.sh.
pub(crate) fn require(tool: &'static str, package: &'static str) -> Result<PathBuf, BedError> {
    which(tool).ok_or(BedError::MissingTool { tool, package })
}

pub(crate) fn ip() -> Result<String, BedError> {
    Ok(require("ip", "iproute2")?.display().to_string())
}

pub(crate) fn iptables() -> Result<String, BedError> {
    Ok(require("iptables", "iptables")?.display().to_string())
}

fn failure(argv: &[String], out: &std::process::Output) -> BedError {
    BedError::Command {
        argv: argv.join(" "),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// Runs `argv` to completion (blocking); its stdout on success.
pub(crate) fn run_sync(argv: &[String]) -> Result<String, BedError> {
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(BedError::io(format!("running {}", argv[0])))?;
    if !out.status.success() {
        return Err(failure(argv, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `argv` to completion; its stdout on success.
pub(crate) async fn run(argv: &[String]) -> Result<String, BedError> {
    let out = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(BedError::io(format!("running {}", argv[0])))?;
    if !out.status.success() {
        return Err(failure(argv, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `argv` as owned strings (for the `vec!`-free call sites).
pub(crate) fn argv<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_package_and_the_test_script() {
        let e = require("lifeboat-no-such-tool", "some-package").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("lifeboat-no-such-tool") && msg.contains("some-package"));
        assert!(msg.contains("scripts/test.sh"), "{msg}");
        assert!(which("ip").is_some(), "ip is found outside PATH too");
    }
}

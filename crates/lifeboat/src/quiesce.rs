//! Stopping the writers of a database while it is restored, and bringing them
//! back afterwards.
//!
//! A [`Quiescer`] knows how to stop and resume writers. Implementations here:
//! [`NoQuiesce`] (nothing to stop) and [`Commands`] (operator-configured argument
//! vectors, run without a shell). Kubernetes Deployments come with the
//! Kubernetes issue.
//!
//! [`Quiesced`] is the guard a restore holds while writers are down: dropping it
//! without deciding (an error, a panic, the future dropped on Ctrl-C) brings the
//! writers back. The one decision that leaves them down is
//! [`Quiesced::leave_down`], used when the restored database failed verification
//! (a wrong database must not take traffic). A `kill -9` of Lifeboat cannot run
//! anything: the operator then runs the `post` commands by hand (the restore
//! prints them before it starts).

use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::config::Quiesce;

/// Stops and resumes the writers of one database.
pub trait Quiescer: Send {
    /// One line for messages, e.g. `commands (2 pre, 1 post)`.
    fn describe(&self) -> String;
    /// Stops the writers. On error some may be stopped already; the caller
    /// resumes.
    fn stop(&mut self) -> Result<()>;
    /// Brings the writers back. Must be safe to call when `stop` failed midway
    /// or was never called.
    fn resume(&mut self) -> Result<()>;
    /// What an operator runs to bring writers back by hand.
    fn manual_resume_hint(&self) -> String;
}

/// No writers to stop.
pub struct NoQuiesce;

impl Quiescer for NoQuiesce {
    fn describe(&self) -> String {
        "none".into()
    }
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    fn resume(&mut self) -> Result<()> {
        Ok(())
    }
    fn manual_resume_hint(&self) -> String {
        "nothing to do".into()
    }
}

/// Configured commands: `pre` stop the writers, `post` bring them back. Each is
/// an argument vector run without a shell; stdout and stderr go to Lifeboat's
/// stderr. `post` runs every command even when one fails.
pub struct Commands {
    pub pre: Vec<Vec<String>>,
    pub post: Vec<Vec<String>>,
}

fn run(argv: &[String]) -> Result<()> {
    let Some((prog, args)) = argv.split_first() else {
        bail!("an empty quiesce command");
    };
    let status = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| anyhow::anyhow!("starting quiesce command {argv:?}: {e}"))?;
    if !status.success() {
        bail!("quiesce command {argv:?} failed ({status})");
    }
    Ok(())
}

impl Quiescer for Commands {
    fn describe(&self) -> String {
        format!(
            "commands ({} to stop, {} to resume)",
            self.pre.len(),
            self.post.len()
        )
    }
    fn stop(&mut self) -> Result<()> {
        for c in &self.pre {
            run(c)?;
        }
        Ok(())
    }
    fn resume(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        for c in &self.post {
            if let Err(e) = run(c) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("; "))
        }
    }
    fn manual_resume_hint(&self) -> String {
        let cmds: Vec<String> = self.post.iter().map(|c| c.join(" ")).collect();
        format!("run: {}", cmds.join(" && "))
    }
}

/// Builds the quiescer a source's configuration asks for.
pub fn from_config(q: Option<&Quiesce>) -> Result<Box<dyn Quiescer>> {
    let Some(q) = q else {
        return Ok(Box::new(NoQuiesce));
    };
    if !q.deployments.is_empty() {
        bail!(
            "quiesce.deployments ({}) needs the Kubernetes support, which is not built yet; \
             use quiesce.commands, or pass --no-quiesce and stop the writers yourself",
            q.deployments.join(", ")
        );
    }
    match &q.commands {
        Some(c) if !c.pre.is_empty() || !c.post.is_empty() => Ok(Box::new(Commands {
            pre: c.pre.clone(),
            post: c.post.clone(),
        })),
        _ => Ok(Box::new(NoQuiesce)),
    }
}

/// Writers are down while this lives. Dropped undecided, it brings them back.
pub struct Quiesced {
    q: Box<dyn Quiescer>,
    active: bool,
}

impl Quiesced {
    /// Stops the writers. When stopping fails, whatever was stopped is resumed
    /// and the error returned.
    pub fn stop(mut q: Box<dyn Quiescer>) -> Result<Self> {
        if let Err(e) = q.stop() {
            if let Err(r) = q.resume() {
                eprintln!("warning: bringing writers back after a failed stop also failed: {r}");
            }
            return Err(e.context("stopping the writers before the restore (nothing was restored)"));
        }
        Ok(Quiesced { q, active: true })
    }

    /// Brings the writers back.
    pub fn resume(mut self) -> Result<()> {
        self.active = false;
        self.q.resume()
    }

    /// Leaves the writers stopped on purpose; returns how to bring them back.
    pub fn leave_down(mut self) -> String {
        self.active = false;
        self.q.manual_resume_hint()
    }
}

impl Drop for Quiesced {
    fn drop(&mut self) {
        if self.active {
            eprintln!("restore did not finish: bringing the writers back");
            if let Err(e) = self.q.resume() {
                eprintln!(
                    "error: bringing the writers back failed: {e}; {}",
                    self.q.manual_resume_hint()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), s.into()]
    }

    #[test]
    fn failed_stop_resumes_and_drop_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let l = log.display().to_string();
        let q = Commands {
            pre: vec![sh(&format!("echo pre >> {l}")), vec!["false".into()]],
            post: vec![sh(&format!("echo post >> {l}"))],
        };
        assert!(Quiesced::stop(Box::new(q)).is_err());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");

        std::fs::remove_file(&log).unwrap();
        let q = Commands {
            pre: vec![sh(&format!("echo pre >> {l}"))],
            post: vec![sh(&format!("echo post >> {l}"))],
        };
        drop(Quiesced::stop(Box::new(q)).unwrap());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");

        std::fs::remove_file(&log).unwrap();
        let q = Commands {
            pre: vec![sh(&format!("echo pre >> {l}"))],
            post: vec![sh(&format!("echo post >> {l}"))],
        };
        let hint = Quiesced::stop(Box::new(q)).unwrap().leave_down();
        assert!(hint.contains("echo post"), "{hint}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\n");
    }
}

//! `replication.synchronous` (docs/failover.md, "Synchronous replication"):
//! the primary names every other region in `synchronous_standby_names` as
//! `ANY 1 ("eu-west", …)`, so a commit returns only once one standby has
//! flushed it (with `synchronous_commit = on`, PostgreSQL's default).
//!
//! The names are set on the primary once a standby follows it (after
//! `region replicate`, a rejoin, a switchover); every promotion clears them
//! on the promoted server ([`crate::promotion::promote`]), whose standbys
//! do not follow it yet.

use lifeboat_postgres::conn::{ConnConfig, pg_message};

use super::observe;
use super::replicate::ReplicateError;
use super::retry::Retry;

/// The value naming `standbys` (pure): `ANY 1 ("a", "b")`, each name
/// quoted as an identifier; empty without standbys.
pub fn standby_names(standbys: &[&str]) -> String {
    if standbys.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = standbys
        .iter()
        .map(|s| format!("\"{}\"", s.replace('"', "\"\"")))
        .collect();
    format!("ANY 1 ({})", quoted.join(", "))
}

/// A string literal for SQL (pure).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Sets the primary's `synchronous_standby_names` to name `standbys`
/// (`ALTER SYSTEM` and a reload) unless it already does. Returns the value
/// set, or `None` when nothing changed.
pub async fn name_standbys(
    primary: &ConnConfig,
    standbys: &[&str],
) -> Result<Option<String>, ReplicateError> {
    let want = standby_names(standbys);
    let client = observe::connect(primary, Retry::default())
        .await
        .map_err(ReplicateError::PrimaryConn)?;
    let sql_err = |what: &'static str| {
        move |e: tokio_postgres::Error| ReplicateError::PrimarySql {
            what,
            url: primary.display_url(),
            message: pg_message(&e),
        }
    };
    let now: String = client
        .query_one("SELECT current_setting('synchronous_standby_names')", &[])
        .await
        .map_err(sql_err("reading synchronous_standby_names"))?
        .get(0);
    if now == want {
        return Ok(None);
    }
    client
        .batch_execute(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = {}",
            literal(&want)
        ))
        .await
        .map_err(sql_err("setting synchronous_standby_names"))?;
    client
        .query_one("SELECT pg_reload_conf()", &[])
        .await
        .map_err(sql_err("reloading the configuration"))?;
    Ok(Some(want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_standby_quoted() {
        assert_eq!(standby_names(&[]), "");
        assert_eq!(standby_names(&["eu-west"]), "ANY 1 (\"eu-west\")");
        assert_eq!(
            standby_names(&["eu-west", "ap-south"]),
            "ANY 1 (\"eu-west\", \"ap-south\")"
        );
        assert_eq!(standby_names(&["we\"ird"]), "ANY 1 (\"we\"\"ird\")");
        assert_eq!(literal("ANY 1 (\"o'k\")"), "'ANY 1 (\"o''k\")'");
    }
}

//! What a database *is*, as its server says, not as its URL is spelled.
//!
//! Two URLs name the same database when the servers behind them report the
//! same `system_identifier` (`pg_control_system()`, fixed at `initdb` and
//! kept by every physical copy: a standby, a server rebuilt from a base
//! backup) and the same database OID. A physical copy shares both values, so
//! telling "the very same running server" apart from a copy needs two more:
//! the `data_directory` (readable only by superusers and members of
//! `pg_read_all_settings`) and `pg_postmaster_start_time()`.
//!
//! [`read`] asks a server for its [`ServerIdentity`]; [`relation`] compares
//! two identities (pure, table-tested); [`user_objects`] lists what a
//! database holds outside the system schemas, for "is it empty?".

use std::time::Duration;

use tokio_postgres::Client;

use crate::conn::{ConnConfig, ConnError};

/// What a server says about itself and one of its databases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerIdentity {
    /// `pg_control_system().system_identifier`: the cluster's lineage.
    pub system_identifier: i64,
    /// The database's name on that server.
    pub database: String,
    /// Its OID; `None` when the database does not exist (the identity was
    /// then read through the maintenance database).
    pub database_oid: Option<u32>,
    /// `data_directory`; `None` when this user may not read it (it needs
    /// superuser or `pg_read_all_settings`).
    pub data_directory: Option<String>,
    /// `pg_postmaster_start_time()`, as the server prints it.
    pub postmaster_start: String,
}

impl ServerIdentity {
    /// `system identifier 7715…, database kubernaut (OID 16384)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "system identifier {}, database {} ({})",
            self.system_identifier,
            self.database,
            match self.database_oid {
                Some(o) => format!("OID {o}"),
                None => "does not exist".into(),
            }
        )
    }
}

/// How a target database relates to a source database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relation {
    /// Different `system_identifier`: another cluster.
    Unrelated,
    /// The same cluster lineage (the same server or a physical copy of it),
    /// but another database.
    OtherDatabase,
    /// The same database of a physical copy of the source's server (a
    /// standby, a server restored from a base backup): same system identifier
    /// and database, but not the same running server. `differs` names what
    /// tells them apart.
    Copy { differs: Vec<&'static str> },
    /// The same database on the very same running server.
    /// `data_directory_compared` is false when a side could not read its
    /// `data_directory`: then the start time alone (to the microsecond) said so.
    SameServer { data_directory_compared: bool },
}

impl Relation {
    /// The same database, on the same server or on a physical copy of it.
    pub fn same_database(&self) -> bool {
        matches!(self, Relation::Copy { .. } | Relation::SameServer { .. })
    }
}

/// Compares `target` with `source`. A database that does not exist on either
/// side is the same database only when it is missing on both under one name
/// (the source database was dropped and is about to be recreated).
pub fn relation(source: &ServerIdentity, target: &ServerIdentity) -> Relation {
    if source.system_identifier != target.system_identifier {
        return Relation::Unrelated;
    }
    let same_db = match (source.database_oid, target.database_oid) {
        (Some(a), Some(b)) => a == b,
        (None, None) => source.database == target.database,
        _ => false,
    };
    if !same_db {
        return Relation::OtherDatabase;
    }
    let mut differs = Vec::new();
    let dirs = (&source.data_directory, &target.data_directory);
    if let (Some(a), Some(b)) = dirs
        && a != b
    {
        differs.push("data_directory");
    }
    if source.postmaster_start != target.postmaster_start {
        differs.push("postmaster start time");
    }
    if differs.is_empty() {
        Relation::SameServer {
            data_directory_compared: dirs.0.is_some() && dirs.1.is_some(),
        }
    } else {
        Relation::Copy { differs }
    }
}

/// Why an identity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("reading the server's identity from {target}: {message}")]
    Query { target: String, message: String },
}

/// Reads the identity of `conn`'s server and database. A missing database is
/// no error: the server part is read through `postgres` and the OID is
/// `None`. A server that cannot be reached is asked again twice (after 0.5 s
/// and 1 s) before the error is returned: reading is idempotent.
pub async fn read(conn: &ConnConfig) -> Result<ServerIdentity, IdentityError> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read_once(conn).await {
            Err(IdentityError::Conn(ConnError::Unreachable { .. })) if attempt < 3 => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

async fn read_once(conn: &ConnConfig) -> Result<ServerIdentity, IdentityError> {
    let (client, exists) = match conn.connect().await {
        Ok(c) => (c, true),
        Err(ConnError::DatabaseMissing { .. }) => {
            (conn.with_dbname("postgres").connect().await?, false)
        }
        Err(e) => return Err(e.into()),
    };
    let q = |e: tokio_postgres::Error| IdentityError::Query {
        target: conn.display_url(),
        message: crate::conn::pg_message(&e),
    };
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), \
                    pg_postmaster_start_time()::text, \
                    (SELECT setting FROM pg_settings WHERE name = 'data_directory'), \
                    (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .map_err(q)?;
    Ok(ServerIdentity {
        system_identifier: row.get(0),
        postmaster_start: row.get(1),
        data_directory: row.get(2),
        database_oid: if exists { row.get(3) } else { None },
        database: conn.dbname.clone(),
    })
}

/// The comment on the database `client` is connected to (`COMMENT ON DATABASE`).
pub async fn database_comment(client: &Client) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
             WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0))
}

/// What a database holds outside the system schemas: tables, views,
/// sequences, functions, types and schemas other than `public`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// How many objects there are in all.
    pub total: i64,
    /// The first of them by kind and name, as `table public.orders`.
    pub first: Vec<String>,
}

impl Contents {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// `table public.a, view public.b, … (12 objects in all)`.
    pub fn listing(&self) -> String {
        let mut s = self.first.join(", ");
        if self.total > self.first.len() as i64 {
            s.push_str(&format!(", … ({} objects in all)", self.total));
        }
        s
    }
}

/// Lists up to `limit` of the user objects of the database `client` is
/// connected to (see [`Contents`]).
pub async fn user_objects(client: &Client, limit: i64) -> Result<Contents, tokio_postgres::Error> {
    const USER_NS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
                           AND n.nspname NOT LIKE 'pg\\_%'";
    let sql = format!(
        "WITH o(kind, name) AS (
           SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                    WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'type'
                    ELSE 'table' END,
                  format('%I.%I', n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {USER_NS}
           UNION ALL
           SELECT 'function', format('%I.%I', n.nspname, p.proname)
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE {USER_NS}
           UNION ALL
           SELECT 'type', format('%I.%I', n.nspname, t.typname)
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE t.typtype IN ('e', 'd', 'r', 'm') AND {USER_NS}
           UNION ALL
           SELECT 'schema', format('%I', n.nspname) FROM pg_namespace n
            WHERE n.nspname <> 'public' AND {USER_NS})
         SELECT kind || ' ' || name, count(*) OVER () FROM o ORDER BY kind, name LIMIT $1"
    );
    let rows = client.query(&sql, &[&limit]).await?;
    Ok(Contents {
        total: rows.first().map_or(0, |r| r.get(1)),
        first: rows.iter().map(|r| r.get(0)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(sys: i64, oid: Option<u32>, dir: Option<&str>, start: &str) -> ServerIdentity {
        ServerIdentity {
            system_identifier: sys,
            database: "prod".into(),
            database_oid: oid,
            data_directory: dir.map(str::to_string),
            postmaster_start: start.into(),
        }
    }

    #[test]
    fn relation_table() {
        let src = id(1, Some(16384), Some("/data"), "t0");
        let cases: &[(&str, ServerIdentity, Relation)] = &[
            (
                "another cluster",
                id(2, Some(16384), Some("/data"), "t0"),
                Relation::Unrelated,
            ),
            (
                "another database of the same server",
                id(1, Some(16385), Some("/data"), "t0"),
                Relation::OtherDatabase,
            ),
            (
                "a database to be created on the same server",
                id(1, None, Some("/data"), "t0"),
                Relation::OtherDatabase,
            ),
            (
                "the very same server",
                id(1, Some(16384), Some("/data"), "t0"),
                Relation::SameServer {
                    data_directory_compared: true,
                },
            ),
            (
                "same server, data_directory unreadable",
                id(1, Some(16384), None, "t0"),
                Relation::SameServer {
                    data_directory_compared: false,
                },
            ),
            (
                "a copy in another directory, started later",
                id(1, Some(16384), Some("/copy"), "t1"),
                Relation::Copy {
                    differs: vec!["data_directory", "postmaster start time"],
                },
            ),
            (
                "a standby in a pod: same path, another start",
                id(1, Some(16384), Some("/data"), "t1"),
                Relation::Copy {
                    differs: vec!["postmaster start time"],
                },
            ),
            (
                "a copy, data_directory unreadable",
                id(1, Some(16384), None, "t1"),
                Relation::Copy {
                    differs: vec!["postmaster start time"],
                },
            ),
        ];
        for (what, target, want) in cases {
            assert_eq!(&relation(&src, target), want, "{what}");
        }
        // Missing on both sides under one name: the same (dropped) database.
        let gone = id(1, None, Some("/data"), "t0");
        assert!(relation(&gone, &gone).same_database());
        let mut other = gone.clone();
        other.database = "other".into();
        assert_eq!(relation(&gone, &other), Relation::OtherDatabase);
        assert!(!Relation::OtherDatabase.same_database());
    }

    #[test]
    fn listing_is_truncated() {
        let c = Contents {
            total: 12,
            first: vec!["table public.a".into(), "view public.b".into()],
        };
        assert_eq!(
            c.listing(),
            "table public.a, view public.b, … (12 objects in all)"
        );
        assert!(Contents::default().is_empty());
    }
}

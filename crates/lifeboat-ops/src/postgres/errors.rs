//! PostgreSQL failures as the service layer's [`Error`]s, each with its
//! exit code and what to do: authentication failure 6, database missing 3,
//! bad URL / unknown table / missing client tools 2, not enough staging
//! space 8, everything else 1.

use lifeboat_postgres::conn::ConnError;
use lifeboat_postgres::dump::DumpError;
use lifeboat_postgres::facts::FactsError;
use lifeboat_postgres::identity::IdentityError;
use lifeboat_postgres::tools::ToolsError;

use crate::error::{AUTH, Error, FAILURE, NOT_FOUND, STORAGE, USAGE, fail};

fn conn_code(e: &ConnError) -> i32 {
    match e {
        ConnError::AuthFailed { .. } => AUTH,
        ConnError::DatabaseMissing { .. } => NOT_FOUND,
        ConnError::InvalidUrl(_) | ConnError::PasswordInUrl | ConnError::PassFile { .. } => USAGE,
        _ => FAILURE,
    }
}

fn conn_hint(e: &ConnError) -> &'static str {
    match e {
        ConnError::AuthFailed { .. } => {
            "; check PGPASSWORD, ~/.pgpass (mode 0600) or the source's password reference"
        }
        ConnError::Unreachable { .. } => {
            "; check host and port, that the server runs and that it accepts TCP connections from here"
        }
        ConnError::DatabaseMissing { .. } => "; check the database name in the URL",
        _ => "",
    }
}

pub fn conn_err(e: ConnError) -> Error {
    fail(conn_code(&e), format!("{e}{}", conn_hint(&e)))
}

pub fn facts_err(e: FactsError) -> Error {
    match e {
        FactsError::Conn(c) => conn_err(c),
        FactsError::NoSuchTable(t) => fail(
            USAGE,
            format!(
                "table {t} does not exist; names resolve through search_path like in SQL \
                 (write schema.name to be exact); nothing was backed up"
            ),
        ),
        other => fail(FAILURE, other.to_string()),
    }
}

pub fn dump_err(e: DumpError) -> Error {
    match e {
        DumpError::Conn(c) => conn_err(c),
        e @ DumpError::InsufficientSpace { .. } => fail(
            STORAGE,
            format!(
                "{e}; set --staging-dir (or LIFEBOAT_STAGING_DIR), or restore without --jobs (streams with no staging)"
            ),
        ),
        other => fail(FAILURE, other.to_string()),
    }
}

pub fn tools_err(e: ToolsError) -> Error {
    fail(USAGE, e.to_string())
}

/// A server identity that could not be read: refused, saying what to do.
pub fn identity_err(e: IdentityError, what: &str) -> Error {
    match e {
        IdentityError::Conn(c) => {
            let code = conn_code(&c);
            fail(
                code,
                format!(
                    "{c}{} (reading the identity of {what}); nothing was changed",
                    conn_hint(&c)
                ),
            )
        }
        q @ IdentityError::Query { .. } => fail(
            USAGE,
            format!(
                "{q}; Lifeboat decides whether {what} is the source's database by the server's \
                 system identifier (pg_control_system(), executable by PUBLIC unless revoked: \
                 GRANT EXECUTE ON FUNCTION pg_control_system() TO this user); nothing was changed"
            ),
        ),
    }
}

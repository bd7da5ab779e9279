//! The application's role as a fence test sees it (`revoke_login`): a
//! login as it, a write through its session, and whether it is locked out.
//! Used by the Patroni and CloudNativePG fence tests.

use std::time::Duration;

/// An application role with a password, on loopback servers.
pub struct AppRole {
    pub name: &'static str,
    pub password: &'static str,
}

impl AppRole {
    /// A login as the role on the server at `port`: the client, or the
    /// SQLSTATE it was refused with (`None`: no server answer).
    pub fn login(
        &self,
        rt: &tokio::runtime::Runtime,
        port: u16,
    ) -> Result<tokio_postgres::Client, Option<String>> {
        rt.block_on(async {
            let mut cfg = tokio_postgres::Config::new();
            cfg.host("127.0.0.1")
                .port(port)
                .user(self.name)
                .password(self.password)
                .dbname("postgres")
                .connect_timeout(Duration::from_secs(5));
            match cfg.connect(tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Ok(client)
                }
                Err(e) => Err(e.as_db_error().map(|d| d.code().code().to_string())),
            }
        })
    }

    /// The role is locked out of the server at `port`: its open session
    /// `client` can no longer write (terminated) and a new login is refused
    /// with SQLSTATE 28000 (the role may not log in).
    pub fn locked_out(
        &self,
        rt: &tokio::runtime::Runtime,
        port: u16,
        client: &tokio_postgres::Client,
    ) -> bool {
        !writes(rt, client) && matches!(self.login(rt, port), Err(Some(code)) if code == "28000")
    }
}

/// A write through `client` (into `app_rows`): whether it was accepted.
pub fn writes(rt: &tokio::runtime::Runtime, client: &tokio_postgres::Client) -> bool {
    rt.block_on(client.batch_execute("INSERT INTO app_rows VALUES (1)"))
        .is_ok()
}

//! How a primary is fenced: what the operator chose in the configuration.

use serde::{Deserialize, Serialize};

/// The fence applied to a primary whose region lease can no longer be
/// renewed. Both make the server refuse the application's writes in a way
/// the application cannot undo; `default_transaction_read_only` is not one
/// (any session can `SET` it off), so it is not offered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FenceMethod {
    /// Stop the server at once (immediate shutdown): nothing connects,
    /// nothing writes, every open session ends. The default.
    #[default]
    Stop,
    /// `ALTER ROLE … NOLOGIN` for each role, then terminate every session
    /// of those roles. The server keeps running (Lifeboat's own role, the
    /// replication role and roles not listed still connect): use it when
    /// the server must stay up for other readers, and list every role that
    /// writes.
    RevokeLogin { roles: Vec<String> },
}

impl FenceMethod {
    /// A short name for status lines and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            FenceMethod::Stop => "stop",
            FenceMethod::RevokeLogin { .. } => "revoke_login",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_default() {
        assert_eq!(FenceMethod::default(), FenceMethod::Stop);
        let cases = [
            (FenceMethod::Stop, r#"{"kind":"stop"}"#),
            (
                FenceMethod::RevokeLogin {
                    roles: vec!["app".into(), "batch".into()],
                },
                r#"{"kind":"revoke_login","roles":["app","batch"]}"#,
            ),
        ];
        for (m, json) in cases {
            assert_eq!(serde_json::to_string(&m).unwrap(), json);
            assert_eq!(serde_json::from_str::<FenceMethod>(json).unwrap(), m);
        }
        assert_eq!(FenceMethod::Stop.name(), "stop");
    }
}

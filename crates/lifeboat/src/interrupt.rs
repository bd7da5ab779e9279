//! Ctrl-C for the whole process: the listener lives in the service layer
//! (`lifeboat_ops::interrupt`), where `restore postgres` selects on it; `main`
//! starts it before any command runs.

pub use lifeboat_ops::interrupt::{listen, requested};

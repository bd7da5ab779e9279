//! The `lifeboat-postgres` crate's integration tests, one module per file
//! beside this one, in one test binary (`cargo test -p lifeboat-postgres
//! --test postgres`): every release-profile test binary costs CI its own
//! optimisation of the dependencies' generic code. `child_env.rs` runs
//! alone (its own `[[test]]`): it sets variables in the test process's
//! environment. `scripts/check-workspace.py` fails when a file here is in
//! no test target (it would never run).

mod identity;
mod pg;

//! The `lifeboat-kube` crate's integration tests, one module per file
//! beside this one, in one test binary (`cargo test -p lifeboat-kube --test
//! kube`): every release-profile test binary costs CI its own optimisation
//! of the dependencies' generic code. `scripts/check-workspace.py` fails
//! when a file here is in no test target (it would never run).

mod common;

mod deploy;
mod objects_mock;
mod quiesce_mock;
mod rbac;
mod secret_double;

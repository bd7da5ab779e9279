//! The Kubernetes API test double's own tests, one module per file beside
//! this one, in one test binary (`cargo test -p kube-double --test
//! double`). `scripts/check-workspace.py` fails when a file here is in no
//! test target (it would never run).

mod bad_input;
mod binary;
mod kube_client;

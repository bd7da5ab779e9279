//! Kubernetes for Lifeboat: connecting to a cluster ([`client`]), backing up
//! and restoring objects — ConfigMaps, Secrets, custom resources and their
//! CRDs ([`objects`]) — and quiescing writers by scaling Deployments and
//! StatefulSets through the scale subresource ([`quiesce`]).
//!
//! Every idempotent request is retried on transient failures by the one
//! policy in [`retry`].
//!
//! Everything goes through `kube::Client`, so the code path against the
//! tests' API double (`crates/kube-double`) is the one a real cluster takes.

pub mod client;
pub mod custom;
pub mod error;
pub mod objects;
pub mod quiesce;
pub mod retry;
pub mod secret;

/// The client every function here takes; callers name it from here rather
/// than depending on `kube` themselves.
pub use kube::Client;

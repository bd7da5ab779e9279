//! Backing up and restoring Kubernetes objects. (Being built.)

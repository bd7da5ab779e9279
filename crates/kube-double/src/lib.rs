//! Test double of the Kubernetes API server. (Being built.)

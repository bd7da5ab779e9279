//! Drills, recovery objectives, the readiness checklist and, later, failover:
//! the drills issue builds it. Empty until then; the crate exists so the
//! workspace shows the architecture.

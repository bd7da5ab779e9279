//! DNS traffic steering (issue 19: to be written).

pub mod rfc2136;
pub mod route53;

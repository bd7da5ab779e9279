//! (issue 19: to be written)

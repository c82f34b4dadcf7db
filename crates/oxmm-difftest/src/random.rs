//! Random programs (not yet).

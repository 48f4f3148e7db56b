//! Helpers for shubnet's integration tests.

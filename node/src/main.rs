//! The `shubnet` command.
fn main() {}

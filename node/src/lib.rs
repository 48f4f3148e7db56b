//! The shubnet node.

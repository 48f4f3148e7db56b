//! The previous release of `shubnet`, for the mixed-version tests: the build of
//! [`PREVIOUS_COMMIT`] from this repository's history, which `bash .ci/run` makes once and
//! keeps outside the clone (`/var/cache/shubnet-old/<commit>/shubnet`).

use std::path::PathBuf;

/// The commit the previous release is built from: main when versioned protocols, minimum
/// versions and in-place upgrades were asked for, so every wire and disk change since must
/// work beside it.
pub const PREVIOUS_COMMIT: &str = "bb2bf1f2b44aecb011419d138b6a9b2105e65e2d";

/// Environment variable naming another previous-release binary.
pub const PREVIOUS_BIN_ENV: &str = "SHUBNET_PREVIOUS_BIN";

/// The previous release's binary. Panics, saying how to build it, when it is missing.
pub fn binary() -> PathBuf {
    let path = std::env::var_os(PREVIOUS_BIN_ENV).map_or_else(
        || PathBuf::from(format!("/var/cache/shubnet-old/{PREVIOUS_COMMIT}/shubnet")),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the previous release's shubnet is not at {}: `bash .ci/run` builds it from commit \
         {PREVIOUS_COMMIT} (or set {PREVIOUS_BIN_ENV})",
        path.display()
    );
    path
}

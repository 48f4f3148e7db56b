#!/usr/bin/env bash
# Runs every fuzz target of shubnet-protocol for a bounded time: `protocol/fuzz/run.sh [SECONDS]`
# (default 15 per target). Part of the README's test command, so CI fuzzes every parser on every
# run. Needs the nightly toolchain (cargo-fuzz builds with sanitizers) and cargo-fuzz, which
# this script installs from crates.io when missing. A crash fails the run and leaves the input
# under protocol/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:-15}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "protocol/fuzz/run.sh: the nightly toolchain is missing; install it with: rustup toolchain install nightly" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "protocol/fuzz/run.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
# Reuse a build cache outside the clone when CI sets one.
target_dir=()
[[ -n ${CARGO_TARGET_DIR:-} ]] && target_dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
for target in $(cargo +nightly fuzz list); do
    echo "==> fuzzing $target for ${secs}s"
    log=$(mktemp)
    # corpus/ is generated and ignored; seeds/TARGET (committed: inputs that once hurt, such as
    # the squashfs decompression bomb) is read as a second corpus.
    corpora=()
    if [[ -d seeds/$target ]]; then
        mkdir -p "corpus/$target"
        corpora=("corpus/$target" "seeds/$target")
    fi
    if ! cargo +nightly fuzz run "${target_dir[@]}" "$target" "${corpora[@]}" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        rm -f "$log"
        echo "fuzz target $target failed; the input is under protocol/fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "^Done [0-9]+ runs" "$log" || tail -n 3 "$log"
    rm -f "$log"
done
echo "fuzz: every target ran ${secs}s without a crash"

#!/usr/bin/env bash
# Runs each storage-format fuzz target for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz wants a nightly compiler for its
# sanitizer flags; on a stable toolchain this script sets RUSTC_BOOTSTRAP=1 so stable accepts them.
# New inputs go to fuzz/work/<target>/ (ignored by git); the committed seeds in
# fuzz/corpus/<target>/ are read, never written. Crashes land in fuzz/artifacts/<target>/: minimise
# one (`cargo fuzz tmin`), commit it under fuzz/corpus/<target>/ and add a test asserting its error
# kind.
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(block_decode segment_decode segment_structure block_roundtrip)
fi

cd "$(dirname "$0")/../fuzz"
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

for target in "${targets[@]}"; do
    mkdir -p "work/$target"
    echo "== $target: ${seconds}s"
    cargo fuzz run "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
done

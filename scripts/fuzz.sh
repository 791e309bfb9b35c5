#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets/) under libFuzzer, each for a fixed time:
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]     # default: 60 s each, all targets
#
# Needs the nightly toolchain and cargo-fuzz (a plain crates.io install; it builds in a few minutes):
#   rustup toolchain install nightly
#   cargo install cargo-fuzz
#
# Targets: weights_loader (Weights::from_bytes), shard_reader (selfplay::parse_shard) and analyze_query
# (analyze::parse_line), each on arbitrary bytes. The corpus, fuzz/corpus/TARGET/, is seeded on the first run with
# the valid inputs of tests/fuzz_smoke.rs and grows from run to run; like fuzz/artifacts/ it is not committed.
# A crash stops the script with the input saved as fuzz/artifacts/TARGET/crash-…; replay it with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…
# CI has no nightly: tests/fuzz_smoke.rs drives the same entry points on stable with seeded inputs.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(weights_loader shard_reader analyze_query)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs nightly and cargo-fuzz: rustup toolchain install nightly; cargo install cargo-fuzz" >&2
    exit 2
fi

for target in "${targets[@]}"; do
    if [ -z "$(ls -A "fuzz/corpus/$target" 2>/dev/null)" ]; then
        echo "== seeding fuzz/corpus/ from tests/fuzz_smoke.rs"
        FUZZ_SEED_DIR="$PWD/fuzz/corpus" cargo test --release --test fuzz_smoke --quiet
        break
    fi
done

for target in "${targets[@]}"; do
    echo "== $target: ${seconds} s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds"
done

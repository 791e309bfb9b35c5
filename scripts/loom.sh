#!/usr/bin/env bash
# Model-checks the batch ring (src/ring/loom_model.rs) with loom: every interleaving of its
# threads up to a preemption bound, with host slots and device slots (about a minute
# once built).
#
#   scripts/loom.sh [TEST]     # every model test by default (each sets its preemption bound)
#
# Builds the crate with `--cfg loom` in its own target directory (target/loom), so the normal
# build is untouched; the first run compiles every dependency once (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release --lib "ring::loom_model::${1:-}" -- --test-threads=1

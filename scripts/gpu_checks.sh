#!/usr/bin/env bash
# The GPU checks, run on the GPU machine from the repository root after
# scripts/device-pack.sh filled .device/ on the Rust machine:
#
#   bash .device/gpu_checks.sh            # logs under $OUT (default ./gpu-checks-out)
#
# Steps (each with its own time limit; a failing step is recorded and the next one runs):
#   1. nvidia-smi                          -> nvidia-smi.txt
#   2. GPU test executable, full sweep      -> tests.log        (parity, graphs, f16/bf16, limits)
#   3. compute-sanitizer memcheck, quick    -> memcheck.log
#   4. compute-sanitizer racecheck          -> racecheck.log    (one small test: it is slow)
#   5. compute-sanitizer synccheck, initcheck, quick -> synccheck.log, initcheck.log
#   6. engine bench --device cuda:0 --batch 256 / 1024 / 4096 --json -> bench-<B>.json
# summary.txt lists every step with its exit status; the script exits non-zero if any failed.
# The limits add up to under 9 minutes (the tests themselves take well under one); the test
# log also holds the graph/eager timings of the forward pass at 256 / 1024 / 4096 rows.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEV="$ROOT/.device"
OUT="${OUT:-$ROOT/gpu-checks-out}"
mkdir -p "$OUT"
export ENGINE_VECTORS="$DEV/vectors"
export ENGINE_REQUIRE_GPU=1 # a GPU test that cannot reach the GPU fails instead of skipping
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0

step() { # step NAME LOG SECONDS COMMAND...
    local name="$1" log="$2" limit="$3"
    shift 3
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$log" 2>&1
    local rc=$?
    printf '%-22s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$log" | tee -a "$SUMMARY"
    [[ $rc -eq 0 ]] || FAILED=1
}

SANITIZER="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)"

step nvidia-smi nvidia-smi.txt 30 nvidia-smi
step tests tests.log 120 "$DEV/gpu" --test-threads=1 --nocapture
if [[ -n "$SANITIZER" ]]; then
    step memcheck memcheck.log 150 env ENGINE_GPU_QUICK=1 "$SANITIZER" --tool memcheck \
        --error-exitcode 1 "$DEV/gpu" --test-threads=1
    step racecheck racecheck.log 90 "$SANITIZER" --tool racecheck --racecheck-report all \
        --error-exitcode 1 "$DEV/gpu" --test-threads=1 net_io_vectors
    step synccheck synccheck.log 60 env ENGINE_GPU_QUICK=1 "$SANITIZER" --tool synccheck \
        --error-exitcode 1 "$DEV/gpu" --test-threads=1 net_io_vectors custom_buckets
    step initcheck initcheck.log 60 env ENGINE_GPU_QUICK=1 "$SANITIZER" --tool initcheck \
        --error-exitcode 1 "$DEV/gpu" --test-threads=1 net_io_vectors custom_buckets
else
    echo "compute-sanitizer not found: sanitizer steps skipped" | tee -a "$SUMMARY"
    FAILED=1
fi
for batch in 256 1024 4096; do
    step "bench-$batch" "bench-$batch.json" 20 \
        "$DEV/engine" bench --device cuda:0 --batch "$batch" --seconds 3 --json
done

cat "$SUMMARY"
exit "$FAILED"

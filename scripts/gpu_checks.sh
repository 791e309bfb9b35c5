#!/usr/bin/env bash
# The GPU checks, run on the GPU machine from the repository root after
# scripts/device-pack.sh filled .device/ on the Rust machine:
#
#   bash .device/gpu_checks.sh [STEP ...]   # logs under $OUT (default ./gpu-checks-out)
#
# Steps, in this order (each with its own time limit; a failing step is recorded and the next one
# runs; name steps to run only those):
#   info        nvidia-smi and `engine info`
#   tests       the GPU test executable, full sweep (parity, graphs, f16/bf16, limits)
#   bench       engine bench --device cuda:0, B = 64 / 256 / 1024 / 4096: direct forward calls
#               (graphs, and eager), and through the ring with 1 and 8 batches in flight (and 1 with
#               --gpu-wait spin); the portable kernels (--cuda-kernel portable), direct and 8 in flight
#   variants    the same bench for every kernel variant binary .device/engine-* (device-pack.sh
#               builds them with ENGINE_NVCC_FLAGS, e.g. engine-s4 with -DBLOB_STAGES=4)
#   selfplay    engine selfplay --device cuda:0, 4 players, Medium: 5-card rounds with mover and
#               all leaf values, mover with the portable kernels and on cuda:0,cuda:0 (two backends),
#               mover with 128 games per worker and with --gpu-wait spin, and full
#               games from 7 cards (mover), 15 s each (SIGINT ends each run: the first Ctrl-C
#               finishes the rounds in flight and prints the summary)
#   fault       self-play stopped by an injected fault (--fault-after-batches: the run writes its finished
#               rounds and exits 1), rerun to completion, then every round's rows counted once (read_shard.py)
#   ncu         Nsight Compute on one forward at B = 256 and 4096 (speed of light, memory,
#               warp stalls; --clock-control none)
#   memcheck racecheck synccheck initcheck
#               compute-sanitizer over the GPU tests (quick sizes; racecheck on one small test)
#   torch       BlobNet in PyTorch on the same GPU: FP32, FP16 autocast, B = 256 / 1024 / 4096
#   torch-fair  the fair PyTorch baseline (scripts/torch_gpu_baseline.py), B = 4096 / 256: folded and
#               unfolded, FP16 weights and TF32, eager and hand-captured CUDA graphs (1 stream, 8 streams,
#               pinned copies), each checked against net_io.json, profiler kernel names recorded
#   blobmaster  BlobMaster's own self-play (.device/reference, copied by device-pack.sh from
#               $BLOBMASTER_REFERENCE): its tuned configuration, 16 workers; its benchmark
#               script evaluates on the CPU
#   compile     PyTorch with torch.compile(mode="reduce-overhead"), FP16 (slow to start: last)
#   torch-fair-compile
#               the fair baseline under torch.compile(mode="max-autotune", fullgraph=True), FP16,
#               B = 4096 / 256 (minutes of autotuning: after everything else)
# Everything lands in $OUT/checks.tar.gz (the device tool returns few files; it is rewritten after
# every step, so a run cut short still returns what it did) and summary.txt lists every step with
# its exit status and seconds; the script exits non-zero if any step failed.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEV="$ROOT/.device"
OUT="${OUT:-$ROOT/gpu-checks-out}"
LOGS="$(mktemp -d)/checks"
mkdir -p "$OUT" "$LOGS"
export ENGINE_VECTORS="$DEV/vectors"
export ENGINE_REQUIRE_GPU=1 # a GPU test that cannot reach the GPU fails instead of skipping
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
FAILED=0
STEPS=" ${*:-info tests bench variants selfplay fault ncu memcheck racecheck synccheck initcheck torch torch-fair blobmaster compile torch-fair-compile} "
wanted() { [[ "$STEPS" == *" $1 "* ]]; }

pack_logs() { tar -C "$(dirname "$LOGS")" -czf "$OUT/checks.tar.gz" checks; }

run_step() { # run_step NAME LOG SECONDS COMMAND...
    local name="$1" log="$2" limit="$3"
    shift 3
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$LOGS/$log" 2>&1
    local rc=$?
    printf '%-24s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$log" | tee -a "$SUMMARY"
    [[ $rc -eq 0 ]] || FAILED=1
    pack_logs
}

# selfplay_for SECONDS NAME ARGS...: a self-play run (on $SELFPLAY_DEVICE, default cuda:0) stopped by
# SIGINT after SECONDS (the engine then finishes the rounds in flight and prints its JSON summary); rc 0
# when the summary came.
selfplay_for() {
    local secs="$1" name="$2"
    shift 2
    local start=$SECONDS dir
    dir="$(mktemp -d)"
    timeout -s INT --kill-after=60 "$secs" "$DEV/engine" selfplay --device "${SELFPLAY_DEVICE:-cuda:0}" \
        --out "$dir" --json --quiet "$@" > "$LOGS/$name.json" 2> "$LOGS/$name.log"
    local rc=$?
    [[ -s "$LOGS/$name.json" ]] && rc=0
    printf '%-24s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$name.json" | tee -a "$SUMMARY"
    [[ $rc -eq 0 ]] || FAILED=1
    du -sh "$dir" >> "$LOGS/$name.log"
    rm -rf "$dir"
    pack_logs
}

SANITIZER="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)"
PY="${PYTHON:-python3}"
# The Python scripts are the package scripts/ under ROOT: `"${PYM[@]}" scripts.NAME` runs one from any directory.
PYM=(env PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m)

if wanted info; then
    run_step nvidia-smi nvidia-smi.txt 30 nvidia-smi
    run_step engine-info engine-info.json 30 "$DEV/engine" info --weights "$DEV/vectors/net.safetensors" --json
fi
wanted tests && run_step tests tests.log 150 "$DEV/gpu" --test-threads=1 --nocapture
if wanted bench; then
    for batch in 64 256 1024 4096; do
        run_step "bench-$batch" "bench-$batch.json" 20 \
            "$DEV/engine" bench --device cuda:0 --batch "$batch" --seconds 2 --json
        run_step "bench-$batch-eager" "bench-$batch-eager.json" 20 \
            "$DEV/engine" bench --device cuda:0 --no-graphs --batch "$batch" --seconds 2 --json
        for n in 1 8; do
            run_step "bench-$batch-ring$n" "bench-$batch-ring$n.json" 20 "$DEV/engine" bench \
                --device cuda:0 --batch "$batch" --in-flight "$n" --seconds 2 --json
        done
        run_step "bench-$batch-ring1-spin" "bench-$batch-ring1-spin.json" 20 "$DEV/engine" bench \
            --device cuda:0 --gpu-wait spin --batch "$batch" --in-flight 1 --seconds 2 --json
        # The RTX 30/40 configuration (99 KB, 2 weight stages) as PTX JIT-compiled for this GPU.
        run_step "bench-$batch-portable" "bench-$batch-portable.json" 20 "$DEV/engine" bench \
            --device cuda:0 --cuda-kernel portable --batch "$batch" --seconds 2 --json
        run_step "bench-$batch-portable-ring8" "bench-$batch-portable-ring8.json" 20 "$DEV/engine" bench \
            --device cuda:0 --cuda-kernel portable --batch "$batch" --in-flight 8 --seconds 2 --json
    done
fi
if wanted variants; then
    for engine in "$DEV"/engine-*; do
        [[ -x "$engine" ]] || continue
        for batch in 256 1024 4096; do
            run_step "$(basename "$engine")-$batch" "$(basename "$engine")-$batch.json" 20 \
                "$engine" bench --device cuda:0 --batch "$batch" --seconds 2 --json
        done
    done
fi
if wanted selfplay; then
    selfplay_for 15 selfplay-mover --leaf-values mover --rounds 100000000
    selfplay_for 15 selfplay-all --leaf-values all --rounds 100000000
    selfplay_for 15 selfplay-mover-portable --leaf-values mover --rounds 100000000 --cuda-kernel portable
    # Two backends and rings on the one GPU: the multi-device path, per-device rows in the summary.
    SELFPLAY_DEVICE=cuda:0,cuda:0 selfplay_for 15 selfplay-mover-two-backends --leaf-values mover --rounds 100000000
    selfplay_for 15 selfplay-mover-g128 --leaf-values mover --rounds 100000000 --games-per-worker 128
    selfplay_for 15 selfplay-mover-spin --leaf-values mover --rounds 100000000 --gpu-wait spin
    selfplay_for 15 selfplay-fullgame --leaf-values mover --full-game --start-cards 7 --games 1000000
fi
if wanted fault; then
    fault_dir="$(mktemp -d)"
    fault_args=(selfplay --device cuda:0 --players 4 --cards 5 --rounds 20000 --out "$fault_dir" --json --quiet)
    # Exit 1 is the expected outcome of the faulted run: the step passes only on it.
    run_step fault-run fault-run.log 120 bash -c '"$@"; [[ $? -eq 1 ]]' _ "$DEV/engine" "${fault_args[@]}" \
        --fault-after-batches 3000
    run_step fault-rerun fault-rerun.json 300 "$DEV/engine" "${fault_args[@]}"
    run_step fault-rows fault-rows.txt 120 "${PYM[@]}" scripts.count_units "$fault_dir" --units 20000 --rows-per-unit 20
    rm -rf "$fault_dir"
fi
NCU="$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || true)"
if wanted ncu && [[ -n "$NCU" ]]; then
    for batch in 256 4096; do
        run_step "ncu-$batch" "ncu-$batch.txt" 90 "$NCU" --clock-control none -k blobnet_forward_f32 \
            -s 3 -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis \
            --section WarpStateStats --section ComputeWorkloadAnalysis --section LaunchStats \
            "$DEV/engine" bench --device cuda:0 --batch "$batch" --seconds 0.2
    done
fi
if [[ -n "$SANITIZER" ]]; then
    # The device-fault test provokes an illegal address on purpose: not run under the sanitizer.
    wanted memcheck && run_step memcheck memcheck.log 150 env ENGINE_GPU_QUICK=1 "$SANITIZER" \
        --tool memcheck --target-processes all --error-exitcode 1 "$DEV/gpu" --test-threads=1 \
        --skip a_device_fault_is_reported_once_against_its_batch
    wanted racecheck && run_step racecheck racecheck.log 90 "$SANITIZER" --tool racecheck --target-processes all \
        --racecheck-report all --error-exitcode 1 "$DEV/gpu" --test-threads=1 net_io_vectors
    wanted synccheck && run_step synccheck synccheck.log 60 env ENGINE_GPU_QUICK=1 "$SANITIZER" \
        --tool synccheck --target-processes all --error-exitcode 1 "$DEV/gpu" --test-threads=1 net_io_vectors custom_buckets
    wanted initcheck && run_step initcheck initcheck.log 60 env ENGINE_GPU_QUICK=1 "$SANITIZER" \
        --tool initcheck --target-processes all --error-exitcode 1 "$DEV/gpu" --test-threads=1 net_io_vectors custom_buckets
elif wanted memcheck || wanted racecheck || wanted synccheck || wanted initcheck; then
    echo "compute-sanitizer not found: sanitizer steps skipped" | tee -a "$SUMMARY"
    FAILED=1
fi
if wanted torch; then
    for mode in fp32 fp16; do
        run_step "torch-$mode" "torch-$mode.json" 60 "${PYM[@]}" scripts.torch_blobnet \
            --device cuda --mode "$mode" --seconds 2 256 1024 4096
    done
fi
# The fair baseline reads the same net as the parity tests (timing does not depend on its values).
fair_baseline() { # fair_baseline NAME SECONDS ARGS...
    local name="$1" limit="$2"
    shift 2
    run_step "$name" "$name.json" "$limit" "${PYM[@]}" scripts.torch_gpu_baseline \
        --weights "$DEV/vectors/net.safetensors" --check "$DEV/vectors/net_io.json" "$@" 4096 256
}
wanted torch-fair && fair_baseline torch-fair 240 --compile ""
if wanted blobmaster && [[ -d "$DEV/reference" ]]; then
    run_step blobmaster blobmaster.json 120 "$PY" "$DEV/reference/bench_blobmaster.py" \
        --mcts medium --workers 16 --rounds 320 --warmup 16 --pbs 30
fi
wanted compile && run_step torch-compile torch-compile.json 150 "${PYM[@]}" scripts.torch_blobnet \
    --device cuda --mode compile --seconds 2 256 1024 4096
wanted torch-fair-compile && fair_baseline torch-fair-compile 480 --compile fp16 --variants compile

pack_logs
cat "$SUMMARY"
exit "$FAILED"

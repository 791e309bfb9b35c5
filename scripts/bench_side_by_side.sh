#!/usr/bin/env bash
# CPU figures side by side on one machine, in one run (machines differ: only ratios count):
#   1. BlobNet forward: engine's CPU backend vs PyTorch (BlobMaster's own BlobNet and ours written from
#      the spec, 2 threads, eval, no_grad) at B = 256 and 1024, alternated ROUNDS times;
#   2. self-play, 4 players × 5 cards, Medium 3×30: engine (--leaf-values mover and all) vs BlobMaster's
#      tuned configuration (root-only search) and its real sequential search.
#
#   PYTHON=/tmp/bm-venv/bin/python BLOBMASTER_REFERENCE=/path/to/blobmaster-reference scripts/bench_side_by_side.sh
#
# PYTHON needs torch, numpy, tqdm (see the reference's README). Prints one JSON object per measurement.
# CPU_KERNELS="avx512 avx2 portable" times each named CPU kernel (default: the one this CPU picks);
# FORWARD_ONLY=1 stops after part 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
REF="${BLOBMASTER_REFERENCE:?set BLOBMASTER_REFERENCE to the folder of the runnable BlobMaster reference}"
ROUNDS="${ROUNDS:-2}"
SELFPLAY_ROUNDS="${SELFPLAY_ROUNDS:-600}"
ENGINE=target/release/engine
cargo build --release --quiet

tag() { sed "s/^{/{\"what\":\"$1\",/"; }

for _ in $(seq "$ROUNDS"); do
  for b in 256 1024; do
    for k in ${CPU_KERNELS:-auto}; do
      kernel=(); [ "$k" = auto ] || kernel=(--cpu-kernel "$k")
      "$ENGINE" bench --device cpu "${kernel[@]}" --batch "$b" --seconds 5 --json 2>/dev/null | tag "engine_cpu_forward_$k"
    done
    THREADS=2 SECONDS_PER_BATCH=5 "$PY" "$REF/torch_forward.py" "$b" | tag torch_blobmaster_forward
    "$PY" -m scripts.torch_blobnet --threads 2 --seconds 5 "$b" | tag torch_spec_forward
  done
done
[ "${FORWARD_ONLY:-0}" = 1 ] && exit 0

"$ENGINE" selfplay --device cpu --rounds "$SELFPLAY_ROUNDS" --leaf-values mover --out "$(mktemp -d)" --json --quiet 2>/dev/null | tag engine_selfplay_mover
"$ENGINE" selfplay --device cpu --rounds $((SELFPLAY_ROUNDS / 4)) --leaf-values all --out "$(mktemp -d)" --json --quiet 2>/dev/null | tag engine_selfplay_all
# bench_blobmaster.py appends one JSON line per run to --out.
out="$(mktemp)"
"$PY" "$REF/bench_blobmaster.py" --mcts medium --workers 2 --rounds 20 --warmup 2 --pbs 30 --out "$out" >/dev/null 2>&1
tail -n 1 "$out" | tag blobmaster_tuned_root_only
"$PY" "$REF/bench_blobmaster.py" --mcts medium --workers 2 --rounds 4 --warmup 2 --no-parallel-expansion --no-evaluator --out "$out" >/dev/null 2>&1
tail -n 1 "$out" | tag blobmaster_sequential

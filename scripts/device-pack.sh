#!/usr/bin/env bash
# Builds everything the GPU machine runs and packs it into the git-ignored folder .device/
# (run here, on the Rust machine; the GPU machine has no Rust toolchain):
#
#   .device/engine           the release binary (kernels compiled in, stripped)
#   .device/engine-<name>    kernel variants for A/B timing, one per VARIANTS entry
#                            "name:nvcc flags" (e.g. VARIANTS="s4:-DBLOB_STAGES=4")
#   .device/gpu              the tests/gpu.rs test executable (stripped)
#   .device/vectors/         net.safetensors, net_io.json and games.json (the compact rows' GPU test)
#   .device/reference/       BlobMaster's runnable reference, when BLOBMASTER_REFERENCE names it
#   .device/gpu_checks.sh    the script to run there (scripts/gpu_checks.sh; it also runs the Python package scripts/)
#
# Then, on the GPU machine, from the repository root: bash .device/gpu_checks.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
DEST="$ROOT/.device"

NVCC_PATH="$(scripts/install-cuda-toolchain.sh | tail -n 1)"
echo "nvcc: $NVCC_PATH"
export ENGINE_REQUIRE_CUDA_KERNELS=1

rm -rf "$DEST"
mkdir -p "$DEST/vectors"
for variant in ${VARIANTS:-}; do
    name="${variant%%:*}"
    ENGINE_NVCC_FLAGS="${variant#*:}" cargo build --release
    cp target/release/engine "$DEST/engine-$name"
done
cargo build --release
# The JSON messages name each test executable; keep the one of tests/gpu.rs.
GPU_TEST="$(cargo test --release --test gpu --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "gpu" \
            and msg.get("executable"):
        print(msg["executable"])
')"
[[ -n "$GPU_TEST" ]] || { echo "device-pack: no test executable for tests/gpu.rs" >&2; exit 1; }

cp target/release/engine "$DEST/engine"
cp "$GPU_TEST" "$DEST/gpu"
strip "$DEST"/engine* "$DEST/gpu"
VECTORS="${ENGINE_VECTORS:-tests/vectors}"
cp "$VECTORS/net.safetensors" "$VECTORS/net_io.json" "$VECTORS/games.json" "$DEST/vectors/"
cp scripts/gpu_checks.sh "$DEST/gpu_checks.sh"
if [[ -n "${BLOBMASTER_REFERENCE:-}" ]]; then
    cp -r "$BLOBMASTER_REFERENCE" "$DEST/reference"
fi
du -sh "$DEST"
echo "glibc versions the binaries need:"
objdump -T "$DEST/engine" "$DEST/gpu" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n 3

#!/usr/bin/env bash
# Installs nvcc 13.0 (the CUDA of the GPU machines' driver 580) from NVIDIA's PyPI wheels into
# the git-ignored folder .cuda/ of the repository, so build.rs finds it without a system CUDA.
#
#   scripts/install-cuda-toolchain.sh        # idempotent: a complete install is kept
#   CUDA_TOOLCHAIN_DIR=/elsewhere scripts/install-cuda-toolchain.sh
#
# The wheels scatter the toolkit over site-packages/nvidia/{cu13,cuda_nvcc,...}; this script
# merges them into one CUDA_HOME-style tree, .cuda/toolkit/{bin,include,lib64,nvvm}, by
# symlinks, which is the layout nvcc expects (it finds cicc via ../nvvm/bin and the crt
# headers via ../include relative to its own bin/ directory). The last line printed is the
# path of nvcc.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${CUDA_TOOLCHAIN_DIR:-$ROOT/.cuda}"
SITE="$DIR/wheels"
HOME_DIR="$DIR/toolkit"
STAMP="$DIR/installed-13.0"
PACKAGES=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.96
)
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"

if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "${PACKAGES[*]}" ]]; then
    rm -rf "$SITE" "$HOME_DIR"
    mkdir -p "$SITE"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$SITE" "${PACKAGES[@]}"
fi

# Every wheel puts its part of the toolkit under nvidia/<something>/{bin,include,lib,nvvm}
# (13.x wheels mostly under nvidia/cu13). Link each file into one tree.
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR"
while IFS= read -r -d '' part; do
    for sub in bin include lib lib64 nvvm; do
        [[ -d "$part/$sub" ]] || continue
        dest="$HOME_DIR/$sub"
        [[ "$sub" == lib ]] && dest="$HOME_DIR/lib64"
        (cd "$part/$sub" && find . -type f -print0) | while IFS= read -r -d '' f; do
            mkdir -p "$dest/$(dirname "$f")"
            ln -sf "$part/$sub/$f" "$dest/$f"
        done
    done
done < <(find "$SITE/nvidia" -mindepth 1 -maxdepth 1 -type d -print0)
chmod +x "$HOME_DIR"/bin/* "$HOME_DIR"/nvvm/bin/* 2>/dev/null || true

NVCC="$HOME_DIR/bin/nvcc"
if [[ ! -x "$NVCC" ]]; then
    echo "install-cuda-toolchain: no nvcc under $HOME_DIR/bin after installing ${PACKAGES[*]}" >&2
    exit 1
fi
"$NVCC" --version >&2
echo "${PACKAGES[*]}" > "$STAMP"
echo "$NVCC"

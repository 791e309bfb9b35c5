#!/usr/bin/env bash
# Installs nvcc 13.0 (the CUDA of the GPU machines' driver 580) from NVIDIA's PyPI wheels into
# the git-ignored folder .cuda/ of the repository, where build.rs finds it; no system CUDA and
# no GPU needed.
#
#   scripts/install-cuda-toolchain.sh        # idempotent: a complete install is kept as is
#   CUDA_TOOLCHAIN_DIR=/elsewhere scripts/install-cuda-toolchain.sh   (then set NVCC for build.rs)
#
# The wheels unpack under .cuda/wheels/nvidia/cu13/{bin,include,lib,nvvm}; this script links
# every file of every wheel's nvidia/<part>/ folder into one CUDA_HOME-style tree,
# .cuda/toolkit/{bin,include,lib64,nvvm}. That is the layout nvcc.profile expects relative to
# nvcc itself (cicc in ../nvvm/bin, libdevice in ../nvvm/libdevice, headers, crt/ included, in
# ../include), so nvcc needs no extra flags. The last line printed is the path of nvcc.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${CUDA_TOOLCHAIN_DIR:-$ROOT/.cuda}"
SITE="$DIR/wheels"
TOOLKIT="$DIR/toolkit"
STAMP="$DIR/installed"
PACKAGES=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.96
)
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
NVCC="$TOOLKIT/bin/nvcc"

# Already installed (same package list, nvcc runs): nothing to do. A build may be using the
# toolkit right now, so a complete install is never rebuilt in place.
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "${PACKAGES[*]}" ]] && "$NVCC" --version > /dev/null 2>&1; then
    echo "$NVCC"
    exit 0
fi

rm -rf "$STAMP" "$SITE" "$TOOLKIT"
mkdir -p "$SITE" "$TOOLKIT"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --target "$SITE" "${PACKAGES[@]}"

for part in "$SITE"/nvidia/*/; do
    part="${part%/}"
    for sub in bin include lib lib64 nvvm; do
        [[ -d "$part/$sub" ]] || continue
        dest="$TOOLKIT/$sub"
        [[ "$sub" == lib ]] && dest="$TOOLKIT/lib64"
        while IFS= read -r -d '' f; do
            mkdir -p "$dest/$(dirname "$f")"
            ln -sf "$part/$sub/$f" "$dest/$f"
        done < <(cd "$part/$sub" && find . \( -type f -o -type l \) -print0)
    done
done

if ! "$NVCC" --version >&2; then
    echo "install-cuda-toolchain: $NVCC does not run after installing ${PACKAGES[*]}" >&2
    exit 1
fi
echo "${PACKAGES[*]}" > "$STAMP"
echo "$NVCC"

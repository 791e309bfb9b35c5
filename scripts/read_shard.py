"""Read a training shard written by `engine selfplay`, checked as the engine's own reader checks it.

    from scripts.read_shard import ShardError, read_shard
    tensors, metadata = read_shard("out/shard-000000.safetensors")                   # torch tensors
    tensors, metadata = read_shard("out/shard-000000.safetensors", framework="np")   # numpy arrays

    python -m scripts.read_shard SHARD...    # one JSON line per shard: path, rows, metadata, SHA-256 of each tensor

A shard (src/selfplay/shard.rs) holds five tensors over the same N rows: `state` float32[N,256] (the acting
player's encoding), `policy` float32[N,52] (root visit shares), `value` float32[N] (2·score/23 − 1), `mask`
uint8[N,52] (legal actions, 0 or 1) and `unit` int64[N] (the index of the round, or of the game in full-game mode,
the row comes from; 0 or more); shard_format.py defines this layout and the format version. Its metadata, all
strings, has `format_version` and usually `rows` (N), plus the run's settings, among them `seed`: (seed, unit)
names the random stream the row's unit was played from. Anything else (another format version, a missing or extra
tensor, another dtype, shapes that disagree on N, a NaN, a mask entry other than 0/1, a negative unit) raises
ShardError naming the file, instead of reaching training. Format 1 (no `unit` tensor) is refused by its version.
The container itself is parsed by the safetensors library, which is less strict than the engine's reader
(engine::selfplay::read_shard also rejects duplicate header keys, holes and trailing bytes).

Needs numpy and safetensors; torch only for framework="pt".
"""
import hashlib
import json
import os
import sys
from typing import Any, Literal

import numpy as np
from safetensors import SafetensorError, safe_open

from .shard_format import SHARD_FORMAT_VERSION, SHARD_TENSORS

StrPath = str | os.PathLike[str]
# Each tensor's dtype and its shape after the row count, in the order the engine writes them.
LAYOUT = {key: (np.dtype(dtype), tail) for key, (dtype, tail) in SHARD_TENSORS.items()}


class ShardError(ValueError):
    pass


def read_shard(path: StrPath, framework: Literal["pt", "np"] = "pt") -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors (a dict name → tensor: torch for framework "pt", numpy for "np") and the metadata (a dict of
    strings) of the shard at PATH; raises ShardError when the shard is not what the engine writes."""
    if framework not in ("pt", "np"):
        raise ValueError(f"framework must be 'pt' or 'np', not {framework!r}")
    # Read and check as numpy (one code path for both frameworks), then hand torch the same memory.
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            # The version first, so that an older shard is reported as such rather than by its tensors.
            version = metadata.get("format_version")
            if version is None:
                raise ShardError(f"{path}: metadata has no 'format_version'")
            if version != SHARD_FORMAT_VERSION:
                raise ShardError(f"{path}: format_version {version}, this reader reads {SHARD_FORMAT_VERSION}; "
                                 "regenerate the shard with this engine's `selfplay`, or read it with the engine "
                                 "version that wrote it")
            keys = set(f.keys())
            if keys != LAYOUT.keys():
                raise ShardError(f"{path}: tensors {sorted(keys)}, expected {list(LAYOUT)}")
            tensors = {key: f.get_tensor(key) for key in LAYOUT}
    except SafetensorError as e:
        raise ShardError(f"{path}: not a valid safetensors file: {e}") from e

    rows = tensors["state"].shape[0] if tensors["state"].ndim == 2 else None
    for key, (dtype, tail) in LAYOUT.items():
        t = tensors[key]
        if t.dtype != dtype:
            raise ShardError(f"{path}: tensor {key!r} is {t.dtype}, expected {dtype}")
        if rows is None or t.shape != (rows, *tail):
            expected = ["N" if rows is None else rows, *tail]
            raise ShardError(f"{path}: tensor {key!r} has shape {list(t.shape)}, expected {expected}")

    if "rows" in metadata and metadata["rows"] != str(rows):
        raise ShardError(f"{path}: metadata says rows = {metadata['rows']!r}, the tensors hold {rows}")
    for key in ("state", "policy", "value"):
        bad = np.flatnonzero(~np.isfinite(tensors[key]))
        if bad.size:
            raise ShardError(f"{path}: tensor {key!r} holds {tensors[key].flat[bad[0]]} at flat index {bad[0]}")
    bad = np.argwhere(tensors["mask"] > 1)
    if bad.size:
        row, action = bad[0]
        raise ShardError(f"{path}: mask of row {row} holds {tensors['mask'][row, action]} for action {action}")
    bad = np.flatnonzero(tensors["unit"] < 0)
    if bad.size:
        raise ShardError(f"{path}: unit of row {bad[0]} is {tensors['unit'][bad[0]]}, "
                         "expected a unit index (0 or more)")

    if framework == "pt":
        import torch

        tensors = {key: torch.from_numpy(t) for key, t in tensors.items()}
    return tensors, metadata


def summary(path: StrPath) -> dict[str, Any]:
    """Row count, metadata and the SHA-256 of each tensor's little-endian bytes, for comparing readers."""
    tensors, metadata = read_shard(path, framework="np")
    return {
        "path": str(path),
        "rows": int(tensors["value"].shape[0]),
        "metadata": metadata,
        "sha256": {key: hashlib.sha256(t.astype(t.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()
                   for key, t in tensors.items()},
    }


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths or paths[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if paths else 2
    try:
        for path in paths:
            print(json.dumps(summary(path)))
    except (ShardError, OSError) as e:  # OSError: a missing or unreadable file
        print(f"read_shard: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

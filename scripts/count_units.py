"""Count the rows of every unit (round, or game in full-game mode) over the shards of a self-play directory.

    python -m scripts.count_units DIR [--units N] [--rows-per-unit R] [--seed S]

Reads every shard-*.safetensors in DIR with read_shard (the engine's checks), of the run with seed S when given,
and prints one JSON line: shards, rows, units, and the units with a count other than R (`wrong`, at most 20 listed)
and those of 0..N-1 that are missing (`missing`, at most 20 listed). Exits 1 when any unit is missing or has another
count than R (each given), so that a run stopped by a fault and rerun can be checked for rows lost or written twice.
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .read_shard import ShardError, read_shard


def count_units(directory: Path, seed: str | None = None) -> tuple[Counter[int], int]:
    """Rows per unit over the shards in DIRECTORY (of the run with SEED, if given), and the number of shards read."""
    counts: Counter[int] = Counter()
    shards = 0
    for path in sorted(directory.glob("shard-*.safetensors")):
        tensors, metadata = read_shard(path, framework="np")
        if seed is not None and metadata.get("seed") != seed:
            continue
        counts.update(int(u) for u in tensors["unit"])
        shards += 1
    return counts, shards


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.count_units", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="the --out directory of engine selfplay")
    ap.add_argument("--units", type=int, metavar="N", help="every unit 0..N-1 must be there")
    ap.add_argument("--rows-per-unit", type=int, metavar="R", help="every unit must have exactly R rows")
    ap.add_argument("--seed", metavar="S", help="count only the shards of the run with this seed")
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        print(f"count_units: {args.dir} is not a directory", file=sys.stderr)
        return 1
    try:
        counts, shards = count_units(args.dir, args.seed)
    except (ShardError, OSError) as e:
        print(f"count_units: {e}", file=sys.stderr)
        return 1
    wrong = sorted(u for u, n in counts.items() if args.rows_per_unit is not None and n != args.rows_per_unit)
    missing = [u for u in range(args.units or 0) if u not in counts]
    print(json.dumps({
        "shards": shards,
        "rows": sum(counts.values()),
        "units": len(counts),
        "wrong": [[u, counts[u]] for u in wrong[:20]],
        "wrong_count": len(wrong),
        "missing": missing[:20],
        "missing_count": len(missing),
    }))
    return 1 if wrong or missing else 0


if __name__ == "__main__":
    sys.exit(main())

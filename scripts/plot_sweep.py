"""A chart of `engine bench --sweep --json`: throughput and latency against batch size, the recommendation marked.

    engine bench --sweep --json > sweep.json
    python -m scripts.plot_sweep sweep.json -o sweep.png

One line per batches in flight (and CPU thread count, with --cpu-threads); the left panel is network rows/s, the
right the mean time from submitting a batch to holding its outputs. The recommended point (the smallest within 5%
of the best, whose `engine selfplay` command the sweep prints) is starred.
"""
import argparse
import io
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .blobnet import StrPath, atomic_write

Line = tuple[tuple[int | None, int], list[dict[str, Any]]]
STYLES, MARKERS = ["-", "--", ":", "-."], ["o", "s", "^", "D", "v"]


def setting(in_flight: int, threads: int | None) -> str:
    text = f"{in_flight} in flight"
    if threads:
        text += f", {threads} thread" + ("s" if threads > 1 else "")
    return text


def series(points: list[dict[str, Any]]) -> list[Line]:
    """The points by (threads, batches in flight), in that order, each line's points in batch order."""
    lines: dict[tuple[int | None, int], list[dict[str, Any]]] = {}
    for p in sorted(points, key=lambda p: p["batch"]):
        lines.setdefault((p.get("threads"), p["in_flight"]), []).append(p)
    return sorted(lines.items(), key=lambda line: (line[0][0] or 0, line[0][1]))


def draw(sweep: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    rate, latency = fig.subplots(1, 2)
    # A colour per thread count, a line style and marker per batches in flight.
    thread_counts = sorted({p.get("threads") or 0 for p in sweep["points"]})
    in_flights = sorted({p["in_flight"] for p in sweep["points"]})
    for (threads, in_flight), points in series(sweep["points"]):
        i = in_flights.index(in_flight)
        style = {"color": f"C{thread_counts.index(threads or 0)}", "linestyle": STYLES[i % len(STYLES)],
                 "marker": MARKERS[i % len(MARKERS)]}
        batches = [p["batch"] for p in points]
        rate.plot(batches, [p["evals_per_s"] for p in points], label=setting(in_flight, threads), **style)
        latency.plot(batches, [p["latency_us"] / 1000 for p in points], **style)
    recommendation = sweep.get("recommendation")
    if recommendation:
        pick = recommendation["pick"]
        rate.plot([pick["batch"]], [pick["evals_per_s"]], "*", color="black", markersize=16, zorder=5,
                  label=f"recommended: batch {pick['batch']}, {setting(pick['in_flight'], pick.get('threads'))}")
        rate.axhline(pick["best_evals_per_s"] * (1 - pick["tolerance"]), color="0.6", linestyle=":",
                     label=f"{pick['tolerance']:.0%} below the best")
    batches = sorted({p["batch"] for p in sweep["points"]})
    for ax, title, unit in ((rate, "Forward throughput through the batch ring", "network rows/s"),
                            (latency, "Latency per batch", "ms from submit to outputs")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_xlabel("batch size (rows)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    rate.set_ylim(0, 1.15 * max(p["evals_per_s"] for p in sweep["points"]))  # room for the star and the legend
    for ax in (rate, latency):
        ax.margins(x=0.08)
    latency.set_yscale("log")
    rate.legend(fontsize="small")
    fig.suptitle(f"engine bench --sweep: {sweep['description']}, {sweep['seconds_per_point']} s per point")
    return fig


def plot_sweep(sweep_json: StrPath, out: StrPath) -> None:
    fig = draw(json.loads(Path(sweep_json).read_text()))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", metavar="SWEEP.json", help="the output of `engine bench --sweep --json`")
    ap.add_argument("-o", "--out", required=True, metavar="PNG", help="the chart to write")
    args = ap.parse_args(argv)
    plot_sweep(args.sweep, args.out)
    print(args.out)


if __name__ == "__main__":
    main()

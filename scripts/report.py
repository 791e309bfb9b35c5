"""The report of a loop.py run: one self-contained HTML file (charts embedded as PNG), opened without a server.

    python -m scripts.report --run DIR [--out FILE]     (default DIR/report.html; loop.py writes it after every
                                                          generation)

Charts: the training and held-out losses over the run's training steps, the arena's Elo and score difference per
generation with their 95% intervals and the promotions marked, the best net's Elo chained over promotions, self-play
speed and the time each step took; then a table of the generations. Drawn from the run's records
(scripts/run_history.py) by matplotlib into PNG (its Agg renderer), so no display is needed.
"""
import argparse
import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, StrMethodFormatter

from .blobnet import StrPath, atomic_write
from .run_history import Generation, finite, load_history

TRAIN, HELD_OUT, PROMOTED, KEPT = "tab:blue", "tab:orange", "tab:green", "tab:gray"
Draw = Callable[[Figure, list[Generation]], None]  # draws one chart of the history into an empty figure


def generation_axis(ax: Axes, history: list[Generation]) -> None:
    ax.set_xlabel("generation")
    ax.set_xticks([g.number for g in history])
    ax.set_xlim(history[0].number - 0.6, history[-1].number + 0.6)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)


def step_axis(ax: Axes, history: list[Generation]) -> None:
    """Training steps summed over generations; a dotted line where each generation's training starts."""
    for gen in history:
        ax.axvline(gen.steps_before, color="0.6", linestyle=":", zorder=0,
                   label="a generation starts" if gen is history[0] else None)
    ax.set_xlabel("training step (over the run)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def epoch_curves(ax: Axes, history: list[Generation], key: str, label: str, color: str, start: int) -> None:
    """One line per generation (its epochs from `start`), so a generation's curve never joins the next one's."""
    for gen in history:
        rows = [r for r in gen.epochs[start:] if finite(r.get(key))]
        ax.plot([gen.step(r) for r in rows], [r[key] for r in rows], "o-", color=color, markersize=3,
                label=label if gen is history[0] else None)


def losses_chart(fig: Figure, history: list[Generation]) -> None:
    policy, kl, value = fig.subplots(1, 3)
    for ax, metric in ((policy, "policy_loss"), (value, "value_loss")):
        epoch_curves(ax, history, f"train_{metric}", "training batches", TRAIN, 1)
        # From epoch 0: each generation's held-out curve starts with the best net it trains from.
        epoch_curves(ax, history, f"val_{metric}", "held out", HELD_OUT, 0)
    epoch_curves(kl, history, "val_policy_kl", "held out", HELD_OUT, 0)
    for ax, title, unit in ((policy, "Policy loss (cross-entropy)", "nats per decision"),
                            (kl, "Policy: KL(search targets ‖ net)", "nats per decision"),
                            (value, "Value loss (MSE)", "squared error, value in [−1, 1]")):
        ax.set_title(title)
        ax.set_ylabel(unit)
        step_axis(ax, history)
    # Log scale: a fresh net's value error is an order of magnitude above a trained one's. Labels at 1, 2, 5 × 10ⁿ,
    # written 0.2, not 2×10⁻¹.
    value.set_yscale("log")
    value.yaxis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
    for set_formatter in (value.yaxis.set_major_formatter, value.yaxis.set_minor_formatter):
        set_formatter(StrMethodFormatter("{x:g}"))
    policy.legend(fontsize="small")


def interval(values: list[float | None], lows: list[float | None], highs: list[float | None]) -> list[list[float]]:
    """Error-bar lengths below and above each value; an infinite or missing end draws none on that side."""
    return [[v - lo if finite(v) and finite(lo) else 0.0 for v, lo in zip(values, lows, strict=True)],
            [hi - v if finite(v) and finite(hi) else 0.0 for v, hi in zip(values, highs, strict=True)]]


def arena_panel(ax: Axes, history: list[Generation], value: str, low: str, high: str) -> None:
    """The candidate's figure per generation with its 95% interval: filled green when promoted, grey when kept.
    An infinite figure (an Elo when one net won every deal) is drawn as a triangle at its interval's finite end."""
    for promoted, color, label in ((True, PROMOTED, "promoted"), (False, KEPT, "kept the best")):
        face = color if promoted else "white"
        gens = [g for g in history if g.promoted == promoted and finite(g.arena[value])]
        if gens:
            values = [g.arena[value] for g in gens]
            err = interval(values, [g.arena[low] for g in gens], [g.arena[high] for g in gens])
            ax.errorbar([g.number for g in gens], values, yerr=err, fmt="o", color=color, capsize=4, label=label,
                        markerfacecolor=face)
        for end, marker, side in ((low, "^", "+∞: at least"), (high, "v", "−∞: at most")):
            gens = [g for g in history if g.promoted == promoted and not finite(g.arena[value])
                    and finite(g.arena[end])]
            if gens:
                ax.plot([g.number for g in gens], [g.arena[end] for g in gens], marker, color=color,
                        markerfacecolor=face, markersize=9, linestyle="none", label=f"{label}, {side}")
    ax.axhline(0, color="black", linewidth=0.8)
    generation_axis(ax, history)


def arena_chart(fig: Figure, history: list[Generation]) -> None:
    elo, diff = fig.subplots(1, 2)
    arena_panel(elo, history, "elo", "elo_low", "elo_high")
    elo.set_title("Arena: candidate's Elo over the best net")
    elo.set_ylabel("Elo (95% interval)")
    if elo.get_legend_handles_labels()[0]:  # nothing to draw when every Elo and its interval are infinite
        elo.legend(fontsize="small")
    arena_panel(diff, history, "difference", "ci95_low", "ci95_high")
    diff.set_title("Arena: candidate − best, mean round score")
    diff.set_ylabel("points per round (Student-t 95% CI)")


def best_elo_chart(fig: Figure, history: list[Generation]) -> None:
    ax = fig.subplots()
    numbers = [0] + [g.number for g in history]
    ax.step(numbers, [0.0] + [g.best_elo for g in history], where="post", color=PROMOTED)
    for promoted, color, label in ((True, PROMOTED, "promoted"), (False, KEPT, "kept the best")):
        gens = [g for g in history if g.promoted == promoted]
        ax.plot([g.number for g in gens], [g.best_elo for g in gens], "o", color=color, label=label,
                markerfacecolor=color if promoted else "white")
    ax.legend(fontsize="small")
    ax.set_title("Best net's Elo over the first net (promoted candidates' Elo, chained)")
    ax.set_ylabel("Elo")
    generation_axis(ax, history)
    ax.set_xlabel("generation (0: the first net)")
    ax.set_xticks(numbers)
    ax.set_xlim(-0.4, history[-1].number + 0.6)


def selfplay_chart(fig: Figure, history: list[Generation]) -> None:
    rounds, rows = fig.subplots(1, 2)
    numbers = [g.number for g in history]
    rounds.plot(numbers, [g.selfplay["rounds_per_min"] for g in history], "o-")
    rounds.set_title("Self-play: rounds per minute")
    rounds.set_ylabel("rounds/min")
    rows.plot(numbers, [g.selfplay["nn_rows_per_s"] for g in history], "o-", label="network rows (evaluations)")
    rows.plot(numbers, [g.examples_per_s() for g in history], "s-", label="training examples")
    rows.set_title("Self-play: rows per second")
    rows.set_ylabel("rows/s")
    rows.set_yscale("log")
    rows.legend(fontsize="small")
    for ax in (rounds, rows):
        generation_axis(ax, history)
        ax.set_ylim(bottom=0 if ax is rounds else None)


def time_chart(fig: Figure, history: list[Generation]) -> None:
    ax = fig.subplots()
    numbers = [g.number for g in history]
    bottom = [0.0] * len(history)
    for label, seconds in (("self-play", [g.selfplay["wall_s"] for g in history]),
                           ("training", [g.train["wall_s"] for g in history]),
                           ("arena", [g.arena["wall_s"] for g in history])):
        ax.bar(numbers, seconds, bottom=bottom, label=label, width=0.6)
        bottom = [b + s for b, s in zip(bottom, seconds, strict=True)]
    ax.set_title("Wall time per generation")
    ax.set_ylabel("seconds")
    ax.legend(fontsize="small")
    generation_axis(ax, history)


# (title, caption, draw, figure size in inches): the report's charts, in order.
CHARTS: list[tuple[str, str, Draw, tuple[float, float]]] = [
    ("Losses", "Per epoch: means over the epoch's training batches, and on the generation's held-out examples "
     "(its first point is the best net the candidate starts from). The policy loss is the cross-entropy against "
     "the search's visit shares; the KL is its part above their entropy, what the net can still learn.",
     losses_chart, (13, 4)),
    ("Arena", "The candidate against the best net on paired deals. A candidate is promoted when the 95% "
     "confidence interval of its score difference (right) lies above 0; the Elo (left) is that of its share of "
     "deals won, with its own interval.", arena_chart, (11, 4)),
    ("Best net's Elo", "The sum of the promoted candidates' Elo: each was measured against the best net before "
     "it, so this is a chain of estimates, not one match against the first net (an infinite Elo, every deal won, "
     "adds its interval's lower end).", best_elo_chart, (7, 3.5)),
    ("Self-play speed", "Rounds per minute and rows per second of each generation's self-play: network rows "
     "(evaluations, one per seat and leaf with --leaf-values all) and training examples written.",
     selfplay_chart, (11, 3.5)),
    ("Time per generation", "Wall time of each step.", time_chart, (7, 3.5)),
]


def png(draw: Draw, history: list[Generation], size: tuple[float, float]) -> bytes:
    # A bare Figure, not pyplot: no backend or display to pick, no global figure list to close.
    fig = Figure(figsize=size, layout="constrained")
    draw(fig, history)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def number(x: float | None, fmt: str) -> str:
    return format(x, fmt) if finite(x) else "–"


def promotion(g: Generation) -> str:
    """Promoted or not, with the decision of the arena's sequential test if it ran one (loop.py --arena-sprt; an
    undecided test left the promotion to the CI)."""
    verdict = "yes" if g.promoted else "no"
    test = g.arena.get("sprt")
    if not test:
        return verdict
    return f"{verdict} (SPRT: {'undecided' if test['decision'] == 'none' else test['decision']})"


def table(history: list[Generation]) -> str:
    head = ["gen", "self-play rounds", "rounds/min", "examples", "train examples × epochs",
            "held-out policy loss: start → end", "held-out value MSE: start → end", "arena deals",
            "candidate − best (95% CI)", "Elo (95% interval)", "promoted", "wall s"]
    rows = []
    for g in history:
        first, last, ar = g.epochs[0], g.epochs[-1], g.arena
        cells = [
            str(g.number), str(g.selfplay["rounds"]), number(g.selfplay["rounds_per_min"], ".0f"),
            str(g.selfplay["examples"]), f"{g.train['train_examples']} × {g.train['epochs']}",
            f"{number(first.get('val_policy_loss'), '.3f')} → {number(last.get('val_policy_loss'), '.3f')}",
            f"{number(first.get('val_value_loss'), '.3f')} → {number(last.get('val_value_loss'), '.3f')}",
            str(ar["deals"]),
            f"{number(ar['difference'], '+.2f')} [{number(ar['ci95_low'], '+.2f')}, {number(ar['ci95_high'], '+.2f')}]",
            f"{number(ar['elo'], '+.0f')} [{number(ar['elo_low'], '+.0f')}, {number(ar['elo_high'], '+.0f')}]",
            promotion(g), number(g.wall_s, ".0f"),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    return f"<table>\n{header}\n" + "\n".join(rows) + "\n</table>"


STYLE = """body { font-family: sans-serif; margin: 2em; color: #222; }
figure { margin: 1.5em 0; } img { max-width: 100%; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; }
td { text-align: right; } code { background: #f4f4f4; padding: 0 0.2em; }"""


def render(run_dir: Path) -> str:
    history = load_history(run_dir)
    if not history:
        raise ValueError(f"{run_dir}: no finished generation to report")
    config = json.loads((run_dir / "config.json").read_text())
    state = json.loads((run_dir / "state.json").read_text())
    settings = ", ".join(f"{k} {config[k]}" for k in ("players", "cards", "preset", "rounds_per_gen", "arena_rounds",
                                                      "epochs", "batch_size", "lr", "window", "device", "seed"))
    figures = []
    for title, caption, draw, size in CHARTS:
        data = base64.b64encode(png(draw, history, size)).decode()
        figures.append(f'<figure><h2>{html.escape(title)}</h2>\n<img alt="{html.escape(title)}" '
                       f'src="data:image/png;base64,{data}">\n<figcaption>{html.escape(caption)}</figcaption>'
                       "</figure>")
    name = html.escape(str(run_dir))
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>BlobNet run {name}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>BlobNet run <code>{name}</code></h1>",
        f"<p>{len(history)} generations; best net <code>{html.escape(state['best'])}</code>. "
        f"Settings: {html.escape(settings)}.</p>",
        *figures, "<h2>Generations</h2>", table(history), "</body></html>", "",
    ])


def write_report(run_dir: StrPath, out: StrPath | None = None) -> Path:
    run_dir = Path(run_dir)
    path = Path(out) if out else run_dir / "report.html"
    text = render(run_dir)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, metavar="DIR", help="a scripts.loop run folder")
    ap.add_argument("--out", metavar="FILE", help="the HTML file to write (default DIR/report.html)")
    args = ap.parse_args(argv)
    print(write_report(args.run, args.out))


if __name__ == "__main__":
    main()

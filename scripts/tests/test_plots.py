"""The plots: report.html has every chart as a PNG, the TensorBoard files hold every scalar once, and
`engine bench --sweep --json` plots. The run here is one generation's records, written by hand with the edge cases
a real small run rarely shows (an infinite Elo bound); test_loop.py checks the same on a real two-generation run."""
import base64
import json
import shutil
import struct
import tempfile
import unittest
import warnings
from html.parser import HTMLParser
from pathlib import Path

from scripts.plot_sweep import plot_sweep
from scripts.report import write_report
from scripts.tensorboard_events import write_events

from .helpers import run_engine

CHARTS = ["Losses", "Arena", "Best net's Elo", "Self-play speed", "Time per generation"]
EPOCH_TAGS = ["train/loss", "train/policy_loss", "train/value_mse", "held_out/loss", "held_out/policy_loss",
              "held_out/value_mse", "held_out/policy_kl", "held_out/top1", "held_out/value_std"]
# Not arena/elo and its bounds: infinite (null, left out) when one net won every deal, as a small arena can.
GENERATION_TAGS = ["arena/score_diff", "arena/score_diff_ci95_low", "arena/score_diff_ci95_high",
                   "arena/los", "arena/promoted", "arena/best_elo", "selfplay/rounds_per_min",
                   "selfplay/examples_per_s", "selfplay/nn_rows_per_s", "time/selfplay_s", "time/train_s",
                   "time/arena_s"]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG; fails on anything else."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.rows = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append((attrs["alt"], attrs["src"]))
        if tag == "tr":
            self.rows += 1


def check_report(test, path, generations):
    """The report has every chart, in order, each an embedded PNG of a plausible size, and a row per generation."""
    page = Images()
    page.feed(Path(path).read_text())
    test.assertEqual([alt for alt, _ in page.images], CHARTS)
    for alt, src in page.images:
        prefix = "data:image/png;base64,"
        test.assertTrue(src.startswith(prefix), alt)
        width, height = png_size(base64.b64decode(src[len(prefix):]))
        test.assertTrue(500 <= width <= 1500 and 250 <= height <= 600, (alt, width, height))
    test.assertEqual(page.rows, 1 + generations)  # the header row and one per generation


def scalars(logdir):
    """{tag: [(step, value), …]} over every event file in logdir, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def check_scalars(test, logdir, generations):
    """Every tag is there; per generation once; the epoch curves on strictly increasing steps (no point twice)."""
    found = scalars(logdir)
    for tag in GENERATION_TAGS:
        test.assertEqual([step for step, _ in found.get(tag, [])], list(range(1, generations + 1)), tag)
    for tag in EPOCH_TAGS:
        steps = [step for step, _ in found.get(tag, [])]
        test.assertTrue(steps, tag)
        test.assertEqual(steps, sorted(set(steps)), tag)
    return found


def epoch_row(epoch, steps, loss):
    row = {"epoch": epoch, "steps": steps, "lr": 3e-4, "train_examples": 570, "val_examples": 30,
           "val_loss": loss + 0.2, "val_policy_loss": loss, "val_value_loss": 0.2, "val_value_std": 0.05,
           "val_policy_kl": loss / 10, "val_top1": 0.5, "wall_s": 1.0 + epoch}
    if epoch:
        row |= {"train_loss": loss + 0.3, "train_policy_loss": loss, "train_value_loss": 0.3}
    return row


def record(g, promoted, elo, elo_low, elo_high):
    """State.json's record of generation g, with the keys loop.py writes."""
    return {
        "generation": g, "best_before": "weights/gen-000.safetensors", "promoted": promoted,
        "best_after": f"weights/cand-{g:03d}.safetensors" if promoted else "weights/gen-000.safetensors",
        "selfplay": {"rounds": 50, "examples": 600, "rounds_per_min": 900.0, "nn_rows_per_s": 5000.0, "wall_s": 3.3},
        "train": {"train_examples": 570, "val_examples": 30, "epochs": 2, "steps": 6, "device": "cpu",
                  "wall_s": 4.0, "log": f"metrics/gen-{g:03d}.jsonl"},
        "arena": {"deals": 8, "rounds_played": 24, "mean_score_a": 5.0, "mean_score_b": 3.0, "difference": 2.0,
                  "ci95_low": 0.5, "ci95_high": 3.5, "wins": 8, "draws": 0, "losses": 0, "elo": elo,
                  "elo_low": elo_low, "elo_high": elo_high, "los": 0.99, "wall_s": 6.0},
        "wall_s": 13.3,
    }


class PlotsTest(unittest.TestCase):
    def setUp(self):
        self.run_dir = Path(tempfile.mkdtemp(prefix="bm-plots-"))
        self.addCleanup(shutil.rmtree, self.run_dir)
        (self.run_dir / "config.json").write_text(json.dumps({
            "players": 3, "cards": 2, "preset": "light", "rounds_per_gen": 50, "arena_rounds": 8, "epochs": 2,
            "batch_size": 256, "lr": 3e-4, "window": 20, "device": "cpu", "seed": 0}))
        # Generation 1 won every arena deal: its Elo and upper bound are infinite (null).
        self.generations = [record(1, True, None, 120.0, None)]
        self.add_generation(1)

    def add_generation(self, g):
        (self.run_dir / "metrics").mkdir(exist_ok=True)
        rows = [epoch_row(e, 3 * e, 1.0 - 0.1 * e) for e in range(3)]
        (self.run_dir / "metrics" / f"gen-{g:03d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        best = self.generations[-1]["best_after"]
        (self.run_dir / "state.json").write_text(json.dumps({"best": best, "generations": self.generations}))

    def test_report_of_one_generation_has_every_chart(self):
        path = write_report(self.run_dir)
        self.assertEqual(path, self.run_dir / "report.html")
        check_report(self, path, 1)
        self.assertEqual([p.name for p in self.run_dir.iterdir() if p.name.endswith(".tmp")], [])

    def test_report_without_any_finite_elo_draws_without_warnings(self):
        # The candidate won every deal: the Elo and both ends of its interval are infinite (null).
        self.generations = [record(1, True, None, None, None)]
        self.add_generation(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_report(self, write_report(self.run_dir), 1)

    def test_report_says_what_promoted(self):
        self.generations.append(record(2, False, -30.0, -80.0, 20.0))
        # Undecided after every deal, and the CI not above 0: kept.
        self.generations[1]["arena"] |= {"ci95_low": -0.5, "sprt": {"elo0": 0, "elo1": 20, "decision": "none"}}
        self.add_generation(2)
        text = write_report(self.run_dir).read_text()
        self.assertIn("<td>yes</td>", text)  # generation 1: no test
        self.assertIn("<td>no (SPRT: undecided)</td>", text)

    def test_tensorboard_points_are_written_once(self):
        first = write_events(self.run_dir)
        self.assertEqual([p.name for p in first], ["events.out.tfevents.gen-001"])
        found = check_scalars(self, self.run_dir / "tensorboard", 1)
        self.assertNotIn("arena/elo", found)  # null (infinite) in the records: left out
        self.assertEqual(found["arena/elo_ci95_low"], [(1, 120.0)])
        self.assertEqual(found["arena/best_elo"], [(1, 120.0)])  # the infinite Elo's lower bound, chained
        self.assertEqual([s for s, _ in found["train/loss"]], [3, 6])  # epochs 1 and 2, not the best net's epoch 0
        self.assertEqual(write_events(self.run_dir), [], "a rerun wrote again")

        self.generations.append(record(2, False, -30.0, -80.0, 20.0))
        self.add_generation(2)
        self.assertEqual([p.name for p in write_events(self.run_dir)], ["events.out.tfevents.gen-002"])
        found = scalars(self.run_dir / "tensorboard")
        self.assertEqual(found["arena/elo"], [(2, -30.0)])
        self.assertEqual([s for s, _ in found["train/loss"]], [3, 6, 9, 12])  # generation 2's steps follow on
        self.assertEqual([v for _, v in found["arena/promoted"]], [1.0, 0.0])
        self.assertEqual(found["arena/best_elo"], [(1, 120.0), (2, 120.0)])  # not promoted: unchanged
        self.assertEqual(sorted(p.name for p in self.run_dir.iterdir()), ["config.json", "metrics", "state.json",
                                                                          "tensorboard"])  # no temporary left

    def test_sweep_plot(self):
        sweep = self.run_dir / "sweep.json"
        result = run_engine("bench", "--sweep", "--device", "cpu", "--batches", "8,32", "--in-flight", "1,2",
                            "--seconds", "0.05", "--json")
        sweep.write_text(json.dumps(result))
        plot_sweep(sweep, self.run_dir / "sweep.png")
        width, height = png_size((self.run_dir / "sweep.png").read_bytes())
        self.assertEqual((width, height), (1100, 420))


if __name__ == "__main__":
    unittest.main()

"""TensorBoard event files of a loop.py run: `tensorboard --logdir RUN/tensorboard`.

    python -m scripts.tensorboard_events --run DIR     (loop.py does this after every generation)

One file per finished generation, RUN/tensorboard/events.out.tfevents.gen-NNN, written once and atomically from the
run's records (scripts/run_history.py): a rerun, a resumed run or a crash between generations never duplicates nor
loses a point, and TensorBoard, which reads the files of a folder in name order, sees them in generation order.

Scalars, per training epoch on the run's training-step axis (steps summed over generations; epoch ≥ 1, as epoch 0
is the previous best net, whose point would sit on the same step):
  train/loss, train/policy_loss, train/value_mse                   means over the epoch's training batches
  held_out/loss, held_out/policy_loss, held_out/value_mse,          on the generation's held-out examples;
  held_out/policy_kl, held_out/top1, held_out/value_std             KL(search targets ‖ net policy)
and per generation (step = generation):
  arena/elo, arena/elo_ci95_low, arena/elo_ci95_high               candidate against the best net
  arena/score_diff, arena/score_diff_ci95_low, arena/score_diff_ci95_high   points per round
  arena/los, arena/promoted (1 or 0), arena/best_elo               the best net's chained Elo over the first
  selfplay/rounds_per_min, selfplay/examples_per_s, selfplay/nn_rows_per_s
  time/selfplay_s, time/train_s, time/arena_s
A value that is null in the records (an infinite Elo bound, no CI below two deals) is left out.
"""
import argparse
import os
import tempfile
from pathlib import Path

from .blobnet import StrPath
from .run_history import Generation, finite, load_history

EPOCH_TAGS = {
    "train/loss": "train_loss", "train/policy_loss": "train_policy_loss", "train/value_mse": "train_value_loss",
    "held_out/loss": "val_loss", "held_out/policy_loss": "val_policy_loss", "held_out/value_mse": "val_value_loss",
    "held_out/policy_kl": "val_policy_kl", "held_out/top1": "val_top1", "held_out/value_std": "val_value_std",
}


def generation_scalars(gen: Generation) -> dict[str, float | None]:
    sp, ar = gen.selfplay, gen.arena
    return {
        "arena/elo": ar["elo"], "arena/elo_ci95_low": ar["elo_low"], "arena/elo_ci95_high": ar["elo_high"],
        "arena/score_diff": ar["difference"], "arena/score_diff_ci95_low": ar["ci95_low"],
        "arena/score_diff_ci95_high": ar["ci95_high"], "arena/los": ar["los"], "arena/promoted": float(gen.promoted),
        "arena/best_elo": gen.best_elo,
        "selfplay/rounds_per_min": sp["rounds_per_min"], "selfplay/examples_per_s": gen.examples_per_s(),
        "selfplay/nn_rows_per_s": sp["nn_rows_per_s"],
        "time/selfplay_s": sp["wall_s"], "time/train_s": gen.train["wall_s"], "time/arena_s": ar["wall_s"],
    }


def event_file(run_dir: StrPath, number: int) -> Path:
    return Path(run_dir) / "tensorboard" / f"events.out.tfevents.gen-{number:03d}"


def write_generation(path: Path, gen: Generation) -> None:
    """Writes the file in a private folder beside RUN/tensorboard, then renames it into place: not with
    blobnet.atomic_write, whose temporary file in RUN/tensorboard would have "tfevents" in its name, which is what
    TensorBoard reads."""
    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package; imported only when used

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent.parent, prefix=".tensorboard-") as folder:
        writer = SummaryWriter(folder)
        for row in gen.epochs[1:]:
            for tag, key in EPOCH_TAGS.items():
                if finite(row.get(key)):
                    writer.add_scalar(tag, row[key], gen.step(row))
        for tag, value in generation_scalars(gen).items():
            if finite(value):
                writer.add_scalar(tag, value, gen.number)
        writer.close()
        (name,) = os.listdir(folder)  # SummaryWriter names its file itself
        with open(os.path.join(folder, name), "rb+") as f:
            os.fsync(f.fileno())
        os.replace(os.path.join(folder, name), path)


def write_events(run_dir: StrPath) -> list[Path]:
    """Writes the event files of the generations that have none; returns them."""
    written = []
    for gen in load_history(run_dir):
        path = event_file(run_dir, gen.number)
        if not path.exists():
            write_generation(path, gen)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, metavar="DIR", help="a scripts.loop run folder")
    for path in write_events(ap.parse_args(argv).run):
        print(path)


if __name__ == "__main__":
    main()

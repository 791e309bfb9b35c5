"""A loop.py run folder read back as one record per finished generation: what the plots are drawn from.

state.json holds each generation's self-play summary, training summary, arena result and promotion; the training's
per-epoch rows (epoch 0 = the best net before training) are in the metrics log it names.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .blobnet import StrPath


@dataclass
class Generation:
    number: int
    promoted: bool
    selfplay: dict[str, Any]
    train: dict[str, Any]
    arena: dict[str, Any]
    wall_s: float
    epochs: list[dict[str, Any]]
    steps_before: int  # training steps of the earlier generations: where this one's curves start on a shared x axis
    best_elo: float  # the best net's Elo after this generation over the first net: the promoted candidates' Elo summed

    def step(self, row: dict[str, Any]) -> int:
        """An epoch row's place on the run's training-step axis."""
        return self.steps_before + row["steps"]

    def examples_per_s(self) -> float:
        return self.selfplay["examples"] / self.selfplay["wall_s"]


def load_history(run_dir: StrPath) -> list[Generation]:
    run_dir = Path(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    history: list[Generation] = []
    steps, best_elo = 0, 0.0
    for record in state["generations"]:
        log = run_dir / record["train"]["log"]
        epochs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        if record["promoted"]:
            # A null Elo is +∞ (every deal won): its finite lower bound is chained instead.
            best_elo += next((x for x in (record["arena"]["elo"], record["arena"]["elo_low"]) if finite(x)), 0.0)
        history.append(Generation(number=record["generation"], promoted=record["promoted"],
                                  selfplay=record["selfplay"], train=record["train"], arena=record["arena"],
                                  wall_s=record["wall_s"], epochs=epochs, steps_before=steps, best_elo=best_elo))
        steps += record["train"]["steps"]
    return history


def finite(x: float | None) -> bool:
    """Whether a metric has a value to plot: JSON null stands for none, or for ±∞ (an Elo bound)."""
    return x is not None and math.isfinite(x)

"""AlphaZero loop: generations of self-play → training → arena, promoting a candidate that beats the best net.

    python -m scripts.loop --run DIR [--generations 3] [--rounds-per-gen 500] [--players 4 --cards 3 --preset light]
                           [--arena-deals 100] [--arena-sprt ELO0,ELO1] [--epochs 2] [--init W.safetensors]
                           [--engine target/release/engine]

Generation g (1, 2, …), each step skipped when its output is already complete:
  1. `engine selfplay` with the best net           → DIR/shards/gen-g/shard-*.safetensors, selfplay.json
  2. `train.py` from the best net on the newest --window shards of DIR/shards
                                                     → DIR/weights/cand-g.safetensors, DIR/metrics/gen-g.jsonl
  3. `engine arena --a cand-g --b best` (paired deals, rotated seats)  → DIR/arena/gen-g.json
  4. promotion when the arena's Student-t 95% CI of (candidate − best) mean round score lies above 0 (ci95_low > 0),
     or, with --arena-sprt ELO0,ELO1, when the arena's sequential test accepts H1 (the candidate is ELO1 Elo better
     rather than ELO0): the arena then stops as soon as the test decides, and a test still undecided after
     --arena-deals deals leaves the decision to the CI over them;
     DIR/state.json records every generation (self-play summary, losses, arena result, wall times) and the best net.
  5. plots of the run so far: DIR/tensorboard/ (`tensorboard --logdir DIR/tensorboard`) and DIR/report.html
     (scripts/tensorboard_events.py, scripts/report.py).
The first best net is --init (copied to DIR/weights/gen-000.safetensors) or `engine init-weights --seed SEED`.

Resumable: after a crash, Ctrl-C or SIGTERM, rerun `python -m scripts.loop --run DIR`: finished steps are skipped and
an unfinished one restarts (an interrupted self-play continues: the rounds it finished are kept and only the rest are
played; every file is written atomically). The
settings are kept in DIR/config.json; options given on a rerun override them (e.g. a larger --generations extends the
run).
Seeds: self-play, training and arena of generation g use SEED + g, so a run is reproducible on one machine
(self-play byte-for-byte with --workers 1).
"""
import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .blobnet import StrPath, atomic_write, atomic_write_json, script_command

SCRIPTS = Path(__file__).resolve().parent
DEFAULTS = {
    "generations": 3, "rounds_per_gen": 500, "players": 4, "cards": 3, "preset": "light", "leaf_values": "all",
    "encoder": "v2", "arena_rounds": 100, "arena_sprt": None, "arena_preset": None, "epochs": 2, "batch_size": 256,
    "lr": 3e-4, "window": 20, "device": "auto", "workers": None, "seed": 0, "init": None,
    "engine": str(SCRIPTS.parent / "target" / "release" / "engine"),
}


class StepFailed(RuntimeError):
    pass


CHILD: list[subprocess.Popen[str]] = []  # the step's process while one runs


def run(cmd: Sequence[object], what: str, env: dict[str, str] | None = None) -> str:
    """Runs cmd (stderr passes through) and returns its stdout. On Ctrl-C (which the terminal sends to the child
    too) or SIGTERM (which on_term forwards) the child gets 10 s to shut down cleanly before it is killed."""
    print("  $ " + " ".join(map(str, cmd)), flush=True)
    proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, text=True, env=env)
    CHILD.append(proc)
    try:
        out, _ = proc.communicate()
    except KeyboardInterrupt:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        CHILD.remove(proc)
    if proc.returncode == 130:  # the engine was interrupted (Ctrl-C, SIGTERM): its output is partial
        raise KeyboardInterrupt
    if proc.returncode != 0:
        raise StepFailed(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}")
    return out


def last_json(out: str, what: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise StepFailed(f"{what} printed no JSON summary")


class Loop:
    def __init__(self, run_dir: StrPath, cfg: dict[str, Any]) -> None:
        self.dir, self.cfg = Path(run_dir), cfg
        self.engine = cfg["engine"]
        if not os.access(self.engine, os.X_OK):
            raise StepFailed(f"no engine binary at {self.engine}: build it with `cargo build --release` "
                             "or pass --engine PATH")
        state_path = self.dir / "state.json"
        self.state = json.loads(state_path.read_text()) if state_path.exists() else {"best": None, "generations": []}

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def rel(self, path: StrPath) -> str:
        return str(Path(path).relative_to(self.dir))

    def metrics_log(self, g: int) -> Path:
        return self.path("metrics", f"gen-{g:03d}.jsonl")

    def save_state(self) -> None:
        atomic_write_json(self.dir / "state.json", self.state)

    def initial_best(self) -> None:
        if self.state["best"]:
            return
        dst = self.path("weights", "gen-000.safetensors")
        if self.cfg["init"]:
            atomic_write(dst, lambda tmp: shutil.copyfile(self.cfg["init"], tmp))
        else:
            run([self.engine, "init-weights", "--seed", self.cfg["seed"], "--out", dst], "init-weights")
        self.state["best"] = self.rel(dst)
        self.save_state()

    def selfplay(self, g: int, best: StrPath) -> dict[str, Any]:
        folder = self.dir / "shards" / f"gen-{g:03d}"
        done = folder / "selfplay.json"
        if done.exists():
            return json.loads(done.read_text())
        # An interrupted attempt left the rounds it finished in FOLDER: the same command continues its run and plays
        # only the rounds missing (engine selfplay resumes a run of the same weights, settings and seed).
        c = self.cfg
        cmd = [self.engine, "selfplay", "--weights", best, "--players", c["players"], "--cards", c["cards"],
               "--rounds", c["rounds_per_gen"], "--preset", c["preset"], "--leaf-values", c["leaf_values"],
               "--encoder", c["encoder"], "--device", c["device"], "--out", folder, "--seed", c["seed"] + g,
               "--json", "--log-file", self.dir / "engine.log"]
        if c["workers"]:
            cmd += ["--workers", c["workers"]]
        summary = last_json(run(cmd, "self-play"), "self-play")
        summary["weights"] = self.rel(best)
        atomic_write_json(done, summary)
        return summary

    def train(self, g: int, best: StrPath) -> dict[str, Any]:
        done = self.path("metrics", f"gen-{g:03d}-train.json")
        if done.exists():
            return json.loads(done.read_text())
        c = self.cfg
        cand = self.path("weights", f"cand-{g:03d}.safetensors")
        cmd, env = script_command("train", "--shards", self.dir / "shards", "--window", c["window"], "--init", best,
                                  "--out", cand, "--epochs", c["epochs"], "--batch-size", c["batch_size"],
                                  "--lr", c["lr"], "--device", c["device"], "--seed", c["seed"] + g,
                                  "--log", self.metrics_log(g))
        summary = last_json(run(cmd, "training", env), "training")
        atomic_write_json(done, summary)
        return summary

    def arena(self, g: int, cand: StrPath, best: StrPath) -> dict[str, Any]:
        done = self.path("arena", f"gen-{g:03d}.json")
        if done.exists():
            return json.loads(done.read_text())
        c = self.cfg
        t0 = time.perf_counter()
        cmd = [self.engine, "arena", "--a", cand, "--b", best, "--deals", c["arena_rounds"], "--players", c["players"],
               "--cards", c["cards"], "--preset", c["arena_preset"] or c["preset"], "--leaf-values", c["leaf_values"],
               "--encoder", c["encoder"], "--device", c["device"], "--seed", c["seed"] + g, "--json",
               "--log-file", self.dir / "engine.log"]
        if c["arena_sprt"]:
            cmd += ["--sprt", c["arena_sprt"]]
        result = last_json(run(cmd, "arena"), "arena")
        result.update(a=self.rel(cand), b=self.rel(best), wall_s=round(time.perf_counter() - t0, 3))
        atomic_write_json(done, result)
        return result

    def generation(self, g: int) -> None:
        best = str(self.dir / self.state["best"])
        print(f"generation {g}: best = {self.state['best']}", flush=True)
        sp = self.selfplay(g, best)
        resumed = f" (+{sp['resumed_units']} from an interrupted attempt)" if sp.get("resumed_units") else ""
        print(f"  self-play: {sp['rounds']} rounds{resumed}, {sp['examples']} examples, {sp['wall_s']:.1f} s",
              flush=True)
        tr = self.train(g, best)
        first, last = tr["first"], tr["last"]
        nan = float("nan")
        print(f"  training: {tr['train_examples']} examples × {tr['epochs']} epochs, {tr['wall_s']:.1f} s; held out: "
              f"policy loss {first.get('val_policy_loss', nan):.4f} → {last.get('val_policy_loss', nan):.4f}, "
              f"value loss {first.get('val_value_loss', nan):.4f} → {last.get('val_value_loss', nan):.4f} "
              f"(value std {last.get('val_value_std', nan):.3f})", flush=True)
        cand = self.dir / "weights" / f"cand-{g:03d}.safetensors"
        ar = self.arena(g, cand, best)
        low, high = ar["ci95_low"], ar["ci95_high"]  # null below two deals
        ci = f"95% CI [{low:+.3f}, {high:+.3f}]" if low is not None else "no CI"
        promoted = promotes(ar)
        if test := ar.get("sprt"):
            ci += (f"; SPRT {test['elo0']:g},{test['elo1']:g}: {test['decision']} (LLR {test['llr']:+.2f} in "
                   f"[{test['lower_bound']:.2f}, {test['upper_bound']:.2f}])"
                   + (", undecided: by the CI" if test["decision"] == "none" else ""))
        print(f"  arena: candidate − best = {ar['difference']:+.3f} points/round, {ci} over {ar['deals']} deals, "
              f"{ar['wall_s']:.1f} s → {'promoted' if promoted else 'kept the best'}", flush=True)
        if promoted:
            self.state["best"] = self.rel(cand)
        self.state["generations"].append({
            "generation": g, "best_before": self.rel(best), "promoted": promoted,
            "best_after": self.state["best"],
            "selfplay": {k: sp.get(k) for k in ("rounds", "resumed_units", "examples", "rounds_per_min",
                                                "nn_rows_per_s", "wall_s")},
            "train": {k: tr.get(k) for k in ("train_examples", "val_examples", "epochs", "steps", "device", "wall_s")}
            | {"first": first, "last": last, "log": self.rel(self.metrics_log(g))},
            "arena": {k: ar.get(k) for k in ("deals", "rounds_played", "mean_score_a", "mean_score_b", "difference",
                                             "ci95_low", "ci95_high", "wins", "draws", "losses", "elo", "elo_low",
                                             "elo_high", "los", "sprt", "wall_s")},
            "wall_s": round(sp["wall_s"] + tr["wall_s"] + ar["wall_s"], 3),
        })
        self.save_state()

    def publish(self) -> None:
        """TensorBoard event files and report.html, drawn from the records. A failure is a warning: the records are
        complete without their plots, which `python -m scripts.report --run DIR` can draw later."""
        try:
            from .report import write_report  # matplotlib, tensorboard: only here
            from .tensorboard_events import write_events

            write_events(self.dir)
            print(f"  report: {write_report(self.dir)}", flush=True)
        except Exception as e:
            print(f"warning: no plots ({type(e).__name__}: {e})", file=sys.stderr)

    def run(self) -> None:
        self.initial_best()
        if self.state["generations"]:
            self.publish()  # catches up after a stop between a generation's record and its plots
        for g in range(len(self.state["generations"]) + 1, self.cfg["generations"] + 1):
            self.generation(g)
            self.publish()
        print(f"done: {len(self.state['generations'])} generations, best = {self.state['best']}")


def promotes(arena: dict[str, Any]) -> bool:
    """Whether an arena's result promotes its candidate (side a). By the SPRT whenever the arena ran one (it stopped
    when the test decided), even if a rerun changed --arena-sprt after this arena had finished; by the CI over all
    the deals when the test ran out of them undecided (a gain smaller than ELO1 can still be clear then) or when
    there was no test."""
    low = arena["ci95_low"]  # null below two deals
    above_zero = low is not None and low > 0
    test = arena.get("sprt")
    if test and test["decision"] != "none":
        return test["decision"] == "H1"
    return above_zero


def sprt_bounds(text: str) -> str | None:
    """ELO0,ELO1 for engine arena --sprt, as given (None for "off"). Its form is checked here, so that a typo fails
    before self-play rather than after it; the engine checks the range (and a rerun with a fixed value redoes only
    the arena)."""
    if text == "off":
        return None
    try:
        elo0, elo1 = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not two numbers ELO0,ELO1 (e.g. 0,20)") from None
    if not (math.isfinite(elo0) and math.isfinite(elo1)):
        raise argparse.ArgumentTypeError(f"{text!r}: the Elos must be finite")
    if not elo0 < elo1:
        raise argparse.ArgumentTypeError(f"{text!r}: ELO0 must be below ELO1")
    return text.strip()


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 argument_default=argparse.SUPPRESS)
    d = DEFAULTS
    ap.add_argument("--run", required=True, metavar="DIR", help="run directory (created, or resumed if it exists)")
    ap.add_argument("--generations", metavar="G", type=int, help=f"generations in total (default {d['generations']})")
    ap.add_argument("--rounds-per-gen", metavar="N", type=int,
                    help=f"self-play rounds per generation (default {d['rounds_per_gen']})")
    ap.add_argument("--players", metavar="P", type=int, help=f"players at the table (default {d['players']})")
    ap.add_argument("--cards", metavar="C", type=int, help=f"cards per round (default {d['cards']})")
    ap.add_argument("--preset", choices=["light", "medium", "heavy"], help="self-play search preset (default light)")
    ap.add_argument("--leaf-values", choices=["all", "mover"], help="engine --leaf-values (default all)")
    ap.add_argument("--encoder", choices=["v2", "v1"], help="encoder layout the nets expect (default v2; v1 for "
                                                              "BlobMaster's published checkpoints)")
    ap.add_argument("--arena-deals", "--arena-rounds", dest="arena_rounds", metavar="M", type=int,
                    help=f"arena deals, each played once per seat rotation (default {d['arena_rounds']})")
    ap.add_argument("--arena-sprt", metavar="ELO0,ELO1", type=sprt_bounds,
                    help="promote by a sequential probability ratio test instead of the CI: the arena stops as soon "
                         "as it decides between H0 'the candidate is ELO0 Elo better' and H1 'ELO1 better' (at most "
                         "--arena-deals deals, then the CI decides) and the candidate is promoted when it accepts "
                         "H1; e.g. 0,20 with --arena-deals 1000 (a negative ELO0 needs the = form: "
                         "--arena-sprt=-5,20); off (the default) promotes by the CI")
    ap.add_argument("--arena-preset", choices=["light", "medium", "heavy"],
                    help="arena search preset (default: --preset)")
    ap.add_argument("--epochs", metavar="E", type=int, help=f"training epochs per generation (default {d['epochs']})")
    ap.add_argument("--batch-size", metavar="B", type=int, help=f"training batch size (default {d['batch_size']})")
    ap.add_argument("--lr", metavar="LR", type=float, help=f"peak learning rate (default {d['lr']})")
    ap.add_argument("--window", metavar="N", type=int, help=f"train on the newest N shards (default {d['window']})")
    ap.add_argument("--device", metavar="DEV",
                    help="auto, cpu, cuda or cuda:N, for self-play, training and the arena (default auto)")
    ap.add_argument("--workers", metavar="W", type=int, help="self-play worker threads (default: engine's, all cores)")
    ap.add_argument("--seed", metavar="S", type=int, help="base seed (default 0)")
    ap.add_argument("--init", metavar="W", help="first best net (default: engine init-weights --seed SEED)")
    ap.add_argument("--engine", metavar="PATH", help=f"engine binary (default {d['engine']})")
    return vars(ap.parse_args(argv))


def config(given: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """DEFAULTS ← DIR/config.json ← options given now; saved back."""
    run_dir = Path(given.pop("run"))
    path = run_dir / "config.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    changed = {k: v for k, v in given.items() if k in stored and stored[k] != v}
    if changed:
        print(f"note: overriding the run's stored settings: {changed}", file=sys.stderr)
    cfg = DEFAULTS | stored | given
    if cfg["init"]:
        cfg["init"] = os.path.abspath(cfg["init"])
    cfg["engine"] = os.path.abspath(cfg["engine"])
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, cfg)
    return run_dir, cfg


def main(argv: list[str] | None = None) -> None:
    def on_term(*_: object) -> None:
        for proc in CHILD:
            proc.terminate()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    run_dir, cfg = config(parse_args(argv))
    try:
        Loop(run_dir, cfg).run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun `python -m scripts.loop --run {run_dir}` to resume", file=sys.stderr)
        sys.exit(130)
    except (StepFailed, FileNotFoundError) as e:
        print(f"error: {e}\nfix the cause and rerun `python -m scripts.loop --run {run_dir}` to resume",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Shared by the tests: paths, the engine binary, small self-play shards."""
import json
import os
import signal
import subprocess
from pathlib import Path

from scripts.blobnet import script_command

REPO = Path(__file__).resolve().parent.parent.parent
VECTORS = REPO / "tests" / "vectors"


def engine():
    """The engine binary: $ENGINE_BIN (the Rust test wrapper sets it), else target/release/engine."""
    path = os.environ.get("ENGINE_BIN") or str(REPO / "target" / "release" / "engine")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no engine binary at {path}: run `cargo build --release` or set ENGINE_BIN")
    return path


def run_engine(*args):
    out = subprocess.run([engine(), *map(str, args)], check=True, capture_output=True, text=True).stdout
    return json.loads(out) if "--json" in args else out


def interruptible():
    """In the child: SIGINT back to its default, which a shell leaves ignored for a background job and Python then
    keeps ignored; a test that interrupts a script must work however the test run was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def python(module, *args, check=True, env=None):
    """Runs `python -m scripts.MODULE ARGS` with this Python, ENV (a dict) added to this process's environment;
    returns the CompletedProcess."""
    cmd, module_env = script_command(module, *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=module_env | (env or {}),
                          preexec_fn=interruptible)
    if check and proc.returncode != 0:
        raise AssertionError(f"scripts.{module} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def selfplay(out, rounds=40, seed=1, players=3, cards=2):
    """A few quick rounds of real self-play (fresh engine net) into OUT."""
    return run_engine("selfplay", "--players", players, "--cards", cards, "--rounds", rounds, "--preset", "light",
                      "--device", "cpu", "--workers", 1, "--out", out, "--seed", seed, "--json", "--quiet")

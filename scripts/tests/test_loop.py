"""loop.py: a tiny two-generation run that survives a crash and a Ctrl-C, skipping the steps already done, and
plots itself (report.html, TensorBoard files) without duplicating a point on a rerun; promotion by SPRT."""
import json
import shutil
import stat
import sys
import tempfile
import unittest
from pathlib import Path

from scripts.loop import promotes

from .helpers import engine, python
from .test_plots import check_report, check_scalars

# Stands in for engine: runs the real one, except that FAKE_ENGINE=selfplay-crash makes self-play's network fail on its
# 20th batch (a crash before the step completed: the rounds finished by then are written, the exit status is 1), and
# FAKE_ENGINE=arena-ctrl-c sends SIGINT to the loop (Ctrl-C).
FAKE = """#!{python}
import os, signal, subprocess, sys
mode, args = os.environ.get("FAKE_ENGINE", ""), sys.argv[1:]
if mode == "arena-ctrl-c" and args[0] == "arena":
    # As if only the loop got it; this child then fails. No wait needed: the signal is pending on the loop before
    # this exit can be seen, so the loop's Python raises KeyboardInterrupt before it reads the exit status.
    os.kill(os.getppid(), signal.SIGINT)
    sys.exit(1)
if mode == "selfplay-crash" and args[0] == "selfplay":
    args += ["--fault-after-batches", "20"]
sys.exit(subprocess.call([{engine!r}] + args))
"""


class LoopTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="bm-loop-"))
        self.addCleanup(shutil.rmtree, self.tmp)
        self.fake = self.tmp / "fake-engine"
        self.fake.write_text(FAKE.format(python=sys.executable, engine=engine()))
        self.fake.chmod(self.fake.stat().st_mode | stat.S_IEXEC)
        self.run_dir = self.tmp / "run"

    def loop(self, mode, *args):
        return python("loop", "--run", self.run_dir, "--engine", self.fake, *args, check=False,
                      env={"FAKE_ENGINE": mode})

    def test_two_generations_resume_after_crash_and_ctrl_c(self):
        tiny = ["--generations", 1, "--rounds-per-gen", 24, "--players", 3, "--cards", 2, "--arena-deals", 6,
                "--epochs", 1, "--batch-size", 64, "--workers", 1]
        gen1 = self.run_dir / "shards" / "gen-001"

        crash = self.loop("selfplay-crash", *tiny)
        self.assertEqual(crash.returncode, 1, crash.stderr)
        self.assertIn("self-play failed", crash.stderr)
        self.assertIn("rerun the same command", crash.stderr)
        self.assertTrue(list(gen1.glob("shard-*.safetensors")), "the finished rounds were not written")
        self.assertFalse((gen1 / "selfplay.json").exists())

        ctrl_c = self.loop("arena-ctrl-c")  # the stored settings apply
        self.assertEqual(ctrl_c.returncode, 130, ctrl_c.stderr)
        self.assertIn("interrupted", ctrl_c.stderr)
        # The rerun continued the crashed self-play: its rounds kept, the others played, none twice.
        selfplay = json.loads((gen1 / "selfplay.json").read_text())
        self.assertGreater(selfplay["resumed_units"], 0, selfplay)
        self.assertEqual(selfplay["resumed_units"] + selfplay["rounds"], 24, selfplay)
        self.assertIn("from an interrupted attempt", ctrl_c.stdout)
        counted = python("count_units", gen1, "--units", 24, "--rows-per-unit", 6)  # 3 players × 2 cards
        self.assertIn('"missing_count": 0', counted.stdout)
        self.assertIn('"wrong_count": 0', counted.stdout)
        done = [gen1 / "selfplay.json", self.run_dir / "weights" / "cand-001.safetensors",
                self.run_dir / "metrics" / "gen-001-train.json", self.run_dir / "metrics" / "gen-001.jsonl"]
        for path in done:
            self.assertTrue(path.exists(), path)
        mtimes = [p.stat().st_mtime_ns for p in done]
        self.assertFalse((self.run_dir / "arena" / "gen-001.json").exists())
        self.assertEqual(json.loads((self.run_dir / "state.json").read_text())["generations"], [])

        ok = self.loop("", "--generations", 2)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual([p.stat().st_mtime_ns for p in done], mtimes, "finished steps were redone")
        self.assertEqual(ok.stdout.count("engine selfplay"), 1)  # generation 2's only
        self.assertIn(" arena ", ok.stdout)
        self.assertIn(" --deals 6 ", ok.stdout)

        state = json.loads((self.run_dir / "state.json").read_text())
        self.assertEqual([g["generation"] for g in state["generations"]], [1, 2])
        for g in state["generations"]:
            arena = json.loads((self.run_dir / "arena" / f"gen-{g['generation']:03d}.json").read_text())
            self.assertEqual(arena["deals"], 6)
            self.assertEqual(g["promoted"], arena["ci95_low"] is not None and arena["ci95_low"] > 0)
            self.assertEqual(arena["wins"] + arena["draws"] + arena["losses"], 6)
            self.assertEqual(g["arena"]["difference"], arena["difference"])
            self.assertIn("val_policy_loss", g["train"]["last"])
        self.assertTrue((self.run_dir / state["best"]).exists())
        self.assertEqual(json.loads((self.run_dir / "config.json").read_text())["generations"], 2)

        self.assertNotIn("warning", ok.stderr)
        check_report(self, self.run_dir / "report.html", 2)
        log = (self.run_dir / "engine.log").read_text()  # every engine command of the run, stamped
        self.assertEqual(log.count(" selfplay --weights"), 3, log)  # the crashed attempt's, then two generations'
        self.assertEqual(log.count(" arena --a"), 2, log)
        self.assertIn("device: cpu", log)
        check_scalars(self, self.run_dir / "tensorboard", 2)
        events = sorted((self.run_dir / "tensorboard").iterdir())
        self.assertEqual([p.name for p in events], ["events.out.tfevents.gen-001", "events.out.tfevents.gen-002"])
        event_mtimes = [p.stat().st_mtime_ns for p in events]

        again = self.loop("")  # complete: nothing to do but redraw the report
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertNotIn("$ ", again.stdout)
        self.assertEqual(sorted((self.run_dir / "tensorboard").iterdir()), events)
        self.assertEqual([p.stat().st_mtime_ns for p in events], event_mtimes, "event files were rewritten")
        check_scalars(self, self.run_dir / "tensorboard", 2)

    def test_promotion_rule(self):
        def arena(low, decision=None):
            test = {"decision": decision} if decision else None
            return {"ci95_low": low, "sprt": test}

        self.assertTrue(promotes(arena(0.1)))
        self.assertFalse(promotes(arena(-0.1)))
        self.assertFalse(promotes(arena(None)))  # one deal: no CI
        self.assertTrue(promotes(arena(-0.1, "H1")))  # the test decides when it did
        self.assertFalse(promotes(arena(0.1, "H0")))
        self.assertTrue(promotes(arena(0.1, "none")))  # undecided after every deal: the CI
        self.assertFalse(promotes(arena(-0.1, "none")))

    def test_sprt_promotion(self):
        bad = self.loop("", "--arena-sprt", "20,0")
        self.assertEqual(bad.returncode, 2, bad.stderr)
        self.assertIn("ELO0 must be below ELO1", bad.stderr)
        self.assertFalse(self.run_dir.exists(), "a refused option still started the run")

        # Wide hypotheses, so that a few deals can decide; --arena-deals is the most it may play. A negative ELO0
        # needs the = form (argparse would take "-400,400" for an option).
        ok = self.loop("", "--generations", 1, "--rounds-per-gen", 12, "--players", 3, "--cards", 2,
                       "--arena-deals", 40, "--arena-sprt=-400,400", "--epochs", 1, "--batch-size", 64,
                       "--workers", 1)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertIn(" --sprt -400,400", ok.stdout)
        arena = json.loads((self.run_dir / "arena" / "gen-001.json").read_text())
        test = arena["sprt"]
        self.assertEqual((test["elo0"], test["elo1"]), (-400, 400))
        self.assertIn(f"SPRT -400,400: {test['decision']}", ok.stdout)
        if test["decision"] == "none":
            self.assertEqual(arena["deals"], 40)
        else:
            self.assertLessEqual(arena["deals"], 40)
        (gen,) = json.loads((self.run_dir / "state.json").read_text())["generations"]
        self.assertEqual(gen["promoted"], promotes(arena))
        self.assertEqual(gen["arena"]["sprt"], test)


if __name__ == "__main__":
    unittest.main()

"""torch_gpu_baseline.py in its CPU smoke mode: one process per batch size, every model and dtype checked against
net_io.json, one complete JSON line per measurement; and its check refuses wrong outputs."""
import json
import unittest

import torch

from scripts import torch_gpu_baseline as baseline

from .helpers import python


class BaselineTest(unittest.TestCase):
    def test_dry_run_measures_every_model_and_dtype_in_one_process_per_batch(self):
        lines = [json.loads(line) for line in python("torch_gpu_baseline", "--dry-run", 2, 3).stdout.splitlines()]
        self.assertEqual({(m["batch"], m["model"], m["dtype"], m["variant"]) for m in lines},
                         {(b, model, dtype, "eager") for b in (2, 3) for model in ("folded", "unfolded")
                          for dtype in ("fp16", "fp32")})
        self.assertEqual(len({m["pid"] for m in lines}), 2, "one process per batch size")
        for m in lines:
            self.assertNotIn("error", m)
            self.assertEqual(len(m["reps_us"]), baseline.REPEATS)
            self.assertEqual(m["us_per_batch"], sorted(m["reps_us"])[baseline.REPEATS // 2])
            self.assertTrue(m["kernels"], "the profiler's op names are recorded")
            if m["dtype"] == "fp32":  # folded in float64 and unfolded both match the recorded outputs
                self.assertTrue(m["check"]["ok"], m)

    def test_check_refuses_outputs_off_the_recorded_ones(self):
        with open(baseline.VECTORS + "/net_io.json") as f:
            _, _, policy, value = baseline.net_io_batch(json.load(f)["cases"], 8)
        self.assertTrue(baseline.check((policy, value), policy, value)["ok"])
        self.assertFalse(baseline.check((policy, value + 0.01), policy, value)["ok"])
        self.assertFalse(baseline.check((torch.roll(policy, 1, dims=1), value), policy, value)["ok"])


if __name__ == "__main__":
    unittest.main()

"""train.py: the masked policy loss, learning on real shards, deterministic output engine reads."""
import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from scripts import blobnet, train
from scripts.shard_format import INPUT_DIM, POLICY_DIM, SHARD_FORMAT_VERSION

from .helpers import python, run_engine, selfplay


class MaskedLossTest(unittest.TestCase):
    def test_illegal_actions_are_ignored(self):
        torch.manual_seed(0)
        logits = torch.randn(4, POLICY_DIM, requires_grad=True)
        mask = torch.zeros(4, POLICY_DIM, dtype=torch.bool)
        mask[:, :5] = True
        mask[1, 7] = True
        target = torch.rand(4, POLICY_DIM) * mask
        target /= target.sum(-1, keepdim=True)
        batch = {"state": torch.zeros(4, INPUT_DIM), "policy": target, "value": torch.zeros(4), "mask": mask}

        def loss(lg, tgt):
            return train.losses(lambda x: (lg, torch.zeros(4)), dict(batch, policy=tgt), torch.device("cpu"), None)[0]

        base = loss(logits, target)
        # Illegal logits, however large, change nothing; neither does target mass on illegal actions.
        wild = logits.detach().masked_fill(~mask, 1e4)
        self.assertTrue(torch.allclose(loss(wild, target), base))
        self.assertTrue(torch.allclose(loss(logits, target + 0.5 * ~mask), base))
        # It is the cross-entropy against the softmax over the legal actions only, and no gradient leaks out.
        for i in range(4):
            legal = mask[i].nonzero().squeeze(1)
            ce = -(target[i, legal] * torch.log_softmax(logits[i, legal], 0)).sum()
            self.assertAlmostEqual(base[i].item(), ce.item(), places=5)
        base.sum().backward()
        self.assertTrue(torch.all(logits.grad[~mask] == 0))
        self.assertTrue(torch.all(torch.isfinite(base)))


class ChosenActionsTest(unittest.TestCase):
    def test_the_most_visited_legal_action_ties_sharing(self):
        visits = torch.zeros(3, POLICY_DIM)
        mask = torch.zeros(3, POLICY_DIM, dtype=torch.bool)
        mask[:, :4] = True
        visits[0, :4] = torch.tensor([3.0, 9.0, 1.0, 0.0])
        visits[1, :4] = torch.tensor([5.0, 2.0, 5.0, 5.0])
        visits[2, :4] = torch.tensor([1.0, 2.0, 0.0, 0.0])
        visits[2, 40] = 99.0  # illegal, never chosen
        chosen = train.chosen_actions(visits, mask)
        self.assertEqual(chosen[0].nonzero().squeeze(1).tolist(), [1])
        self.assertTrue(torch.allclose(chosen[1, [0, 2, 3]], torch.full((3,), 1 / 3)))
        self.assertEqual(chosen[1, 1].item(), 0.0)
        self.assertEqual(chosen[2].nonzero().squeeze(1).tolist(), [1])
        self.assertTrue(torch.allclose(chosen.sum(-1), torch.ones(3)))


class TrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="bm-train-"))
        for g in (1, 2, 3):
            selfplay(cls.tmp / "shards" / f"gen-{g:03d}", rounds=40, seed=g)
        cls.init = cls.tmp / "init.safetensors"
        run_engine("init-weights", "--seed", 3, "--out", cls.init)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def train(self, out, *extra):
        proc = python("train", "--shards", self.tmp / "shards", "--init", self.init, "--out", self.tmp / out,
                      "--threads", 1, "--quiet", *extra)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def test_loss_falls_output_loads_and_keeps_every_key(self):
        summary = self.train("a.safetensors", "--epochs", 4, "--batch-size", 64, "--val-fraction", 0.1,
                             "--log", self.tmp / "a.jsonl")
        rows = [json.loads(line) for line in (self.tmp / "a.jsonl").read_text().splitlines()]
        self.assertEqual([r["epoch"] for r in rows], [0, 1, 2, 3, 4])
        self.assertEqual(summary["train_examples"] + summary["val_examples"], 3 * 240)
        train_loss = [r["train_policy_loss"] for r in rows[1:]]
        self.assertLess(train_loss[-1], train_loss[0])
        self.assertLess(rows[-1]["val_policy_loss"], rows[0]["val_policy_loss"])
        self.assertLess(rows[-1]["val_value_loss"], rows[0]["val_value_loss"])
        for r in rows:  # the loss minimised: policy + --value-weight (1) × value
            self.assertAlmostEqual(r["val_loss"], r["val_policy_loss"] + r["val_value_loss"], places=6)
            if r["epoch"]:
                self.assertAlmostEqual(r["train_loss"], r["train_policy_loss"] + r["train_value_loss"], places=6)

        out = self.tmp / "a.safetensors"
        info = run_engine("info", "--weights", out, "--json")
        self.assertEqual((info["parameters"], info["dtype"]), (4917301, "f32"))
        init, trained = blobnet.load_weights(self.init), blobnet.load_weights(out)
        self.assertEqual(sorted(init), sorted(trained))
        with safe_open(str(out), "pt") as f:
            self.assertEqual(f.metadata()["format"], "pt")
        self.assertFalse(torch.equal(init["policy_fc.3.weight"], trained["policy_fc.3.weight"]))
        self.assertFalse([p for p in os.listdir(self.tmp) if p.endswith(".tmp")])

    def test_chosen_policy_target_is_recorded_and_learned(self):
        summary = self.train("c.safetensors", "--epochs", 2, "--policy-target", "chosen", "--val-fraction", 0.1)
        first, last = summary["first"], summary["last"]
        # One-hot targets (ties aside) have no entropy: the policy loss is nearly all KL, and it falls.
        self.assertLess(first["val_policy_loss"] - first["val_policy_kl"], 0.05)
        self.assertLess(last["val_policy_loss"], first["val_policy_loss"])
        with safe_open(str(self.tmp / "c.safetensors"), "pt") as f:
            self.assertEqual(f.metadata()["policy_target"], "chosen")

    def test_same_seed_same_weights_and_window(self):
        a = self.train("w1.safetensors", "--epochs", 1, "--window", 2, "--seed", 9, "--log", self.tmp / "w.csv")
        b = self.train("w2.safetensors", "--epochs", 1, "--window", 2, "--seed", 9)
        w1, w2 = (blobnet.load_weights(self.tmp / f"w{i}.safetensors") for i in (1, 2))
        for k in w1:
            self.assertTrue(torch.equal(w1[k], w2[k]), k)
        self.assertEqual(a["shards"], 2)
        self.assertEqual(a["train_examples"] + a["val_examples"], 2 * 240)
        header = (self.tmp / "w.csv").read_text().splitlines()[0]
        self.assertTrue(header.startswith("epoch,steps,lr,"))
        self.assertEqual(b["last"]["val_policy_loss"], a["last"]["val_policy_loss"])

    def test_bad_shard_is_named(self):
        # Read through read_shard: a shard the engine's reader would refuse is refused by name, not trained on.
        def shard(name, metadata=None, **tensors):
            rows = 3
            mask = torch.ones(rows, POLICY_DIM, dtype=torch.uint8)
            full = {"state": torch.zeros(rows, INPUT_DIM), "policy": mask.float() / POLICY_DIM,
                    "value": torch.zeros(rows), "mask": mask, "unit": torch.arange(rows)}
            folder = self.tmp / "bad" / name
            folder.mkdir(parents=True)
            full.update(tensors)
            save_file({k: v for k, v in full.items() if v is not None}, str(folder / "shard-000000.safetensors"),
                      metadata=metadata)
            return folder

        version = {"format_version": SHARD_FORMAT_VERSION}
        no_legal = torch.ones(3, POLICY_DIM, dtype=torch.uint8)
        no_legal[2] = 0
        no_version = shard("no-version")
        cases = [
            (no_version, "metadata has no 'format_version'"),
            (shard("old", {"format_version": "1"}), f"format_version 1, this reader reads {SHARD_FORMAT_VERSION};"),
            (shard("no-mask", version, mask=None),
             "tensors ['policy', 'state', 'unit', 'value'], expected ['state', 'policy', 'value', 'mask', 'unit']"),
            (shard("nan", version, value=torch.tensor([0.0, float("nan"), 0.0])),
             "tensor 'value' holds nan at flat index 1"),
            (shard("no-legal", version, mask=no_legal),
             "row 2 has no legal action in its mask"),
        ]
        for folder, message in cases:
            with self.subTest(folder.name), self.assertRaises(ValueError) as caught:
                train.load_shards(train.find_shards(folder, 0))
            self.assertTrue(str(caught.exception).startswith(f"{folder / 'shard-000000.safetensors'}: {message}"),
                            caught.exception)

        # The command names it too, and exits non-zero.
        proc = python("train", "--shards", no_version, "--init", self.init, "--out", self.tmp / "x.safetensors",
                      check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("shard-000000.safetensors: metadata has no 'format_version'", proc.stderr)
        proc = python("train", "--shards", self.tmp / "nothing", "--init", self.init, "--out",
                      self.tmp / "x.safetensors", check=False)
        self.assertIn("no shard-*.safetensors under", proc.stderr)

if __name__ == "__main__":
    unittest.main()

"""convert_checkpoint.py: BlobMaster-style .pth → safetensors that engine reads and evaluates like PyTorch."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import torch
from safetensors import safe_open

from scripts import blobnet

from .helpers import VECTORS, engine, python, run_engine


def seeded_checkpoint(path, seed, key="network_state_dict"):
    """Saves a seeded BlobNet the way BlobMaster's trainer does; returns the net (eval mode)."""
    torch.manual_seed(seed)
    net = blobnet.BlobNet().eval()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ckpt = {key: net.state_dict(), "optimizer_state_dict": opt.state_dict(), "iteration": 7, "total_steps": 70,
            "learning_rate": 1e-3, "metrics": {"policy_loss": [3.9, 3.88]}}
    torch.save(ckpt if key else net.state_dict(), path)
    return net


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bm-convert-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def p(self, name):
        return os.path.join(self.tmp, name)

    def test_seeded_net_is_blobmasters(self):
        # Same construction order and initialisation: seed 1234 gives the recorded BlobMaster net bit for bit.
        torch.manual_seed(1234)
        ours = blobnet.BlobNet().state_dict()
        ref = blobnet.load_weights(VECTORS / "net.safetensors")
        self.assertEqual(sorted(ours), sorted(ref))
        for k in ref:
            self.assertTrue(torch.equal(ours[k], ref[k]), k)

    def test_round_trip_and_engine_agrees_with_pytorch(self):
        net = seeded_checkpoint(self.p("ck.pth"), seed=5)
        python("convert_checkpoint", self.p("ck.pth"), self.p("net.safetensors"))

        back = blobnet.load_weights(self.p("net.safetensors"))
        for k, v in net.state_dict().items():
            self.assertTrue(torch.equal(back[k], v), k)
        with safe_open(self.p("net.safetensors"), "pt") as f:
            self.assertEqual(f.metadata()["format"], "pt")
        info = run_engine("info", "--weights", self.p("net.safetensors"), "--json")
        self.assertEqual((info["parameters"], info["layers"], info["dtype"]), (4917301, 6, "f32"))

        # A vectors folder for `engine verify`: the recorded inputs and masks, PyTorch's outputs of this net.
        io = json.loads((VECTORS / "net_io.json").read_text())
        x = torch.tensor([c["input"] for c in io["cases"]])
        mask = torch.tensor([c["mask"] for c in io["cases"]])
        with torch.no_grad():
            logits, value = net(x)
            policy = blobnet.masked_policy(logits, mask)
        for c, lo, po, v in zip(io["cases"], logits.tolist(), policy.tolist(), value.tolist(), strict=True):
            c.update(logits=lo, policy=po, value=v)
        shutil.copyfile(VECTORS / "games.json", self.p("games.json"))

        def verify():
            with open(self.p("net_io.json"), "w") as f:
                json.dump(io, f)
            report = json.loads(engine_verify(self.tmp))
            return {c["name"]: c for c in report["categories"]}["network"], report

        network, report = verify()
        self.assertEqual((network["passed"], network["failed"]), (96, 0), report["failures"][:3])
        self.assertLess(report["max_policy_diff"], 1e-5)
        self.assertLess(report["max_value_diff"], 1e-5)
        # The comparison is not vacuous: one output moved by 1e-3 fails.
        io["cases"][3]["value"] += 1e-3
        network, _ = verify()
        self.assertEqual((network["passed"], network["failed"]), (95, 1))

    def test_model_state_dict_bare_and_half_dtypes(self):
        net = seeded_checkpoint(self.p("model.pth"), seed=6, key="model_state_dict")
        seeded_checkpoint(self.p("bare.pth"), seed=6, key=None)
        for src, dtype, torch_dtype in [("model.pth", "bf16", torch.bfloat16), ("bare.pth", "f16", torch.float16)]:
            out = self.p(f"{src}.{dtype}.safetensors")
            python("convert_checkpoint", self.p(src), out, "--dtype", dtype)
            self.assertEqual(run_engine("info", "--weights", out, "--json")["dtype"], dtype)
            back = blobnet.load_weights(out)
            for k, v in net.state_dict().items():
                self.assertTrue(torch.equal(back[k], v.to(torch_dtype).float()), k)

    def test_bad_shape_and_missing_key_are_named(self):
        torch.manual_seed(0)
        sd = blobnet.BlobNet().state_dict()
        bad = dict(sd, **{"transformer.layers.2.linear1.weight": torch.zeros(1000, 256)})
        torch.save({"network_state_dict": bad}, self.p("bad.pth"))
        proc = python("convert_checkpoint", self.p("bad.pth"), self.p("bad.safetensors"), check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("'transformer.layers.2.linear1.weight' has shape [1000, 256], expected [1024, 256]", proc.stderr)
        self.assertFalse(os.path.exists(self.p("bad.safetensors")))

        missing = {k: v for k, v in sd.items() if k != "value_fc.3.bias"}
        torch.save({"model_state_dict": missing}, self.p("missing.pth"))
        proc = python("convert_checkpoint", self.p("missing.pth"), self.p("missing.safetensors"), check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("missing key 'value_fc.3.bias' (expected shape [1]", proc.stderr)

        torch.save({"iteration": 3}, self.p("empty.pth"))
        proc = python("convert_checkpoint", self.p("empty.pth"), self.p("empty.safetensors"), check=False)
        self.assertIn("neither 'network_state_dict' nor 'model_state_dict'", proc.stderr)


def engine_verify(folder):
    """engine verify's JSON report (it exits 1 on a failure, which one check here expects)."""
    return subprocess.run([engine(), "verify", "--vectors", folder, "--json"], capture_output=True, text=True).stdout


if __name__ == "__main__":
    unittest.main()

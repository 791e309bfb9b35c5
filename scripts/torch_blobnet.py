#!/usr/bin/env python3
"""BlobNet written from the spec (blob-reference.md §3) in PyTorch, to time against engine's CPU forward.

    torch_blobnet.py [--weights FILE.safetensors] [--check net_io.json] [--threads 2] [--seconds 4] [BATCH ...]

Loads a safetensors state dict with PyTorch's key names if given (else a fresh net), optionally checks
its outputs against net_io.json (exit 1 beyond 1e-4), then times forward passes (eval, no_grad, random
inputs, all actions legal) and prints one JSON line per batch size: {"batch": B, "evals_per_s": ...}.
"""
import argparse, json, struct, sys, time

import torch
from torch import nn

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


class BlobNet(nn.Module):
    def __init__(self, d=256, layers=6, heads=8, ffn=1024, policy_hidden=256, value_hidden=128, state=256, actions=52):
        super().__init__()
        self.input_embedding = nn.Linear(state, d)
        self.input_norm = nn.LayerNorm(d)
        self.positional_encoding = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, activation="relu", batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.policy_fc = nn.Sequential(nn.Linear(d, policy_hidden), nn.ReLU(), nn.Dropout(0.0), nn.Linear(policy_hidden, actions))
        self.value_fc = nn.Sequential(nn.Linear(d, value_hidden), nn.ReLU(), nn.Dropout(0.0), nn.Linear(value_hidden, 1), nn.Tanh())

    def forward(self, x, mask):
        h = self.input_norm(self.input_embedding(x)).unsqueeze(1) + self.positional_encoding
        h = self.transformer(h).squeeze(1)
        logits = self.policy_fc(h)
        policy = torch.softmax(logits.masked_fill(mask == 0, float("-inf")), dim=-1)
        return logits, policy, self.value_fc(h).squeeze(-1)


def load_safetensors(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for key, meta in header.items():
        a, b = meta["data_offsets"]
        t = torch.frombuffer(bytearray(buf[8 + n + a:8 + n + b]), dtype=DTYPES[meta["dtype"]])
        out[key] = t.reshape(meta["shape"]).float()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batches", nargs="*", type=int, default=[256, 1024])
    ap.add_argument("--weights")
    ap.add_argument("--check", metavar="NET_IO_JSON")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = BlobNet()
    if args.weights:
        net.load_state_dict(load_safetensors(args.weights))
    net.eval()
    with torch.no_grad():
        if args.check:
            cases = json.load(open(args.check))["cases"]
            logits, policy, value = net(torch.tensor([c["input"] for c in cases]), torch.tensor([c["mask"] for c in cases]))
            diffs = {name: (ours - torch.tensor([c[name] for c in cases])).abs().max().item()
                     for name, ours in [("logits", logits), ("policy", policy), ("value", value)]}
            print(json.dumps({"check": args.check, "cases": len(cases), **{f"max_{k}_diff": v for k, v in diffs.items()}}))
            if max(diffs.values()) > 1e-4:
                sys.exit(1)
        for b in args.batches:
            x, mask = torch.rand(b, 256), torch.ones(b, 52)
            for _ in range(3):
                net(x, mask)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                net(x, mask)
                n += 1
            print(json.dumps({"batch": b, "evals_per_s": n * b / (time.perf_counter() - t0)}), flush=True)


if __name__ == "__main__":
    main()

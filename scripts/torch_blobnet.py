"""BlobNet written from the spec (blob-reference.md §3) in PyTorch, to time against engine's CPU forward.

    python -m scripts.torch_blobnet [--weights FILE.safetensors] [--check net_io.json] [--threads 2] [--seconds 4]
                                    [--device cpu|cuda] [--mode fp32|fp16|compile] [BATCH ...]

Loads a safetensors state dict with PyTorch's key names if given (else a fresh net), optionally checks
its outputs against net_io.json (exit 1 beyond 1e-4), then times forward passes (eval, no_grad, random
inputs, all actions legal) and prints one JSON line per batch size: {"batch": B, "evals_per_s": ...}.
On CUDA, --mode picks FP32, FP16 autocast, or FP16 autocast under torch.compile(mode="reduce-overhead")
(CUDA graphs); timings synchronize the device so they count finished work.
"""
import argparse
import json
import sys
import time

import torch

from .blobnet import BlobNet, load_weights, masked_policy, net_from_state_dict
from .shard_format import INPUT_DIM, POLICY_DIM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batches", nargs="*", type=int, default=[256, 1024])
    ap.add_argument("--weights")
    ap.add_argument("--check", metavar="NET_IO_JSON")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mode", choices=["fp32", "fp16", "compile"], default="fp32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = net_from_state_dict(load_weights(args.weights), args.weights) if args.weights else BlobNet()
    net.eval()
    with torch.no_grad():
        if args.check:
            with open(args.check) as f:
                cases = json.load(f)["cases"]
            logits, value = net(torch.tensor([c["input"] for c in cases]))
            policy = masked_policy(logits, torch.tensor([c["mask"] for c in cases]))
            diffs = {name: (ours - torch.tensor([c[name] for c in cases])).abs().max().item()
                     for name, ours in [("logits", logits), ("policy", policy), ("value", value)]}
            print(json.dumps({"check": args.check, "cases": len(cases),
                              **{f"max_{k}_diff": v for k, v in diffs.items()}}))
            if max(diffs.values()) > 1e-4:
                sys.exit(1)
        dev = torch.device(args.device)
        net.to(dev)
        step = lambda x, mask: masked_policy(net(x)[0], mask)  # noqa: E731
        if args.mode == "compile":
            step = torch.compile(step, mode="reduce-overhead")
        autocast = torch.autocast(dev.type, dtype=torch.float16, enabled=args.mode != "fp32")
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        for b in args.batches:
            x, mask = torch.rand(b, INPUT_DIM, device=dev), torch.ones(b, POLICY_DIM, device=dev)
            with autocast:
                for _ in range(5):
                    step(x, mask)
                sync()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    for _ in range(10):
                        step(x, mask)
                    n += 10
                    sync()
            print(json.dumps({"batch": b, "device": args.device, "mode": args.mode,
                              "evals_per_s": n * b / (time.perf_counter() - t0)}), flush=True)


if __name__ == "__main__":
    main()

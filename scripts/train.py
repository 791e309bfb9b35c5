"""Train BlobNet on engine's self-play shards and write the result as safetensors.

    python -m scripts.train --shards DIR --init W.safetensors --out W2.safetensors [--epochs 2] [--window 20]
                            [--log metrics.jsonl]

Data: every `shard-*.safetensors` under DIR (searched recursively; `engine selfplay --out` writes them), of which the
newest --window are used; newest = last in path order (loop.py's gen-NNN/shard-NNNNNN names sort in time order).
Each shard is read with read_shard.py's checks (format version, tensor set, dtypes, shapes, finite values, 0/1 masks).
A seeded --val-fraction of the examples is held out and scored before training and after every epoch.
With --policy-target chosen the policy target is the action a greedy search takes (the most visited; ties share),
not the visit shares: a model of what the seats do, for reading their hands, not a net to search with.

Loss per example: policy cross-entropy −Σ π·log p against the shard's root visit shares π, log p a log-softmax
over the legal actions only (the shard's mask; illegal logits never enter, no double softmax), plus --value-weight ×
(v − z)² against the value target z = 2·score/23 − 1. AdamW (decay on matrices only), gradient-norm clip 1.0,
dropout as in BlobMaster (0.1), the learning rate rising linearly over --warmup steps, then falling from --lr to
--lr/10 along a cosine. (Without the warm-up, Adam's first full-size steps can push the value head's tanh into
saturation at −1, where it stays: watch val_value_std.) On CUDA, mixed precision (autocast bf16, or fp16 with loss
scaling where bf16 is unsupported); on the CPU, fp32. Same seed, data and device: same result on the CPU.

Output: every state_dict key (in_proj's unused Q/K rows included), f32, PyTorch key names, written atomically.
Metrics: one row per epoch (epoch 0 = the --init net before training) to --log, JSON lines or CSV by suffix: the
loss (policy + --value-weight × value) and its two parts, means over the epoch's training batches and on the held-out
examples, with the held-out KL(targets ‖ net policy), top-1 agreement and spread of the values; a JSON summary on
stdout.
"""
import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .blobnet import StrPath, load_weights, masked_log_softmax, net_from_state_dict, save_weights
from .read_shard import read_shard

FIELDS = ["epoch", "steps", "lr", "train_examples", "val_examples", "train_loss", "train_policy_loss",
          "train_value_loss", "val_loss", "val_policy_loss", "val_value_loss", "val_value_std", "val_policy_kl",
          "val_top1", "wall_s"]


class DataError(ValueError):
    pass


def find_shards(root: StrPath, window: int) -> list[Path]:
    shards = sorted((Path(folder) / name).relative_to(root).parts
                    for folder, _, names in os.walk(root, followlinks=True)
                    for name in names if name.startswith("shard-") and name.endswith(".safetensors"))
    shards = [Path(root, *parts) for parts in shards]
    if not shards:
        raise DataError(f"no shard-*.safetensors under {root}")
    return shards[-window:] if window else shards


def load_shards(paths: list[Path]) -> dict[str, torch.Tensor]:
    """state f32[N,256], policy f32[N,52], value f32[N], mask bool[N,52], concatenated over the shards, each read
    by read_shard (which raises ShardError, a ValueError naming the file, for a shard the engine would refuse)."""
    parts: dict[str, list[torch.Tensor]] = {"state": [], "policy": [], "value": [], "mask": []}
    for path in paths:
        shard, _ = read_shard(path)
        mask = shard["mask"] != 0
        empty = (mask.sum(1) == 0).nonzero()
        if len(empty):
            raise DataError(f"{path}: row {empty[0, 0].item()} has no legal action in its mask")
        for key, tensors in parts.items():
            tensors.append(mask if key == "mask" else shard[key])
    return {k: torch.cat(v) for k, v in parts.items()}


Batch = Mapping[str, torch.Tensor]
Net = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def losses(net: Net, batch: Batch, device: torch.device, amp_dtype: torch.dtype | None) -> tuple[torch.Tensor, ...]:
    """Per-example policy cross-entropy (legal actions only) and squared value error; also log p (−inf on
    illegal actions), the normalised policy target and the predicted value."""
    state, target, value, legal = (batch[k].to(device, non_blocking=True) for k in ("state", "policy", "value", "mask"))
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits, v = net(state)
    logp = masked_log_softmax(logits, legal)  # float32
    target = target * legal
    target = target / target.sum(-1, keepdim=True).clamp_min(1e-12)
    policy_loss = -(target * logp.masked_fill(~legal, 0.0)).sum(-1)  # no 0·(−inf)
    value_loss = (v.float() - value.float()) ** 2
    return policy_loss, value_loss, logp, target, v.float()


@torch.no_grad()
def evaluate(net: torch.nn.Module, data: Batch, device: torch.device, amp_dtype: torch.dtype | None,
             batch_size: int, value_weight: float) -> dict[str, float]:
    if data["value"].shape[0] == 0:
        return {}
    net.eval()
    sums = {"val_policy_loss": 0.0, "val_value_loss": 0.0, "val_policy_kl": 0.0, "val_top1": 0.0}
    n = data["value"].shape[0]
    values = []
    for i in range(0, n, batch_size):
        batch = {k: v[i:i + batch_size] for k, v in data.items()}
        pl, vl, logp, target, v = losses(net, batch, device, amp_dtype)
        values.append(v)
        entropy = -(target * target.clamp_min(1e-12).log()).sum(-1)
        sums["val_policy_loss"] += pl.sum().item()
        sums["val_value_loss"] += vl.sum().item()
        sums["val_policy_kl"] += (pl - entropy).sum().item()
        sums["val_top1"] += (logp.argmax(-1) == target.argmax(-1)).sum().item()
    net.train()
    means = {k: s / n for k, s in sums.items()}
    return means | {"val_loss": means["val_policy_loss"] + value_weight * means["val_value_loss"],
                    "val_value_std": torch.cat(values).std(correction=0).item()}


class MetricsLog:
    """Rows to a JSON-lines file, or CSV when the name ends in .csv; none without a path."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.file = open(path, "w", newline="") if path else None
        self.csv = csv.DictWriter(self.file, FIELDS, extrasaction="ignore") if path and path.endswith(".csv") else None
        if self.csv:
            self.csv.writeheader()

    def write(self, row: Mapping[str, Any]) -> None:
        if self.csv:
            self.csv.writerow(row)
        elif self.file:
            self.file.write(json.dumps(row) + "\n")
        if self.file:
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda: no CUDA device is available to PyTorch")
    return device


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from 1 to 0.1 at `total`."""
    return min(1.0, (step + 1) / (warmup + 1)) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(step, total) / total)))


def chosen_actions(visits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """The action a greedy search takes from each row of root visits, as a distribution: the most visited legal
    action, ties sharing equally (a greedy search breaks them at random)."""
    visits = visits.masked_fill(~legal, -1.0)
    most = (visits == visits.max(-1, keepdim=True).values).float()
    return most / most.sum(-1, keepdim=True)


def train(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    amp_dtype = None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        if args.amp == "auto":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    shards = find_shards(args.shards, args.window)
    data = load_shards(shards)
    if args.policy_target == "chosen":
        data["policy"] = chosen_actions(data["policy"], data["mask"])
    n = data["value"].shape[0]
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(n, generator=gen)
    n_val = int(n * args.val_fraction) if n > 1 else 0
    # On a GPU the whole window lives there: about 1.3 GB per million examples.
    val = {k: v[order[:n_val]].to(device) for k, v in data.items()}
    tr = {k: v[order[n_val:]].to(device) for k, v in data.items()}
    n_train = n - n_val
    if n_train == 0:
        raise DataError(f"{n} examples leave none to train on with --val-fraction {args.val_fraction}")

    net = net_from_state_dict(load_weights(args.init), args.init, dropout=args.dropout).to(device)
    decay = [p for p in net.parameters() if p.dim() >= 2]
    no_decay = [p for p in net.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, min(args.warmup, total // 4), total))

    log = MetricsLog(args.log)
    common = {"train_examples": n_train, "val_examples": n_val}
    rows = [{"epoch": 0, "steps": 0, "lr": sched.get_last_lr()[0], **common,
             **evaluate(net, val, device, amp_dtype, 1024, args.value_weight),
             "wall_s": round(time.perf_counter() - t0, 3)}]
    log.write(rows[-1])
    net.train()
    step = 0
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(n_train, generator=gen).to(device)
        sums = torch.zeros(2, device=device)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", unit="batch",
                   disable=True if args.quiet else None, leave=False)
        for b in bar:
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            pl, vl, *_ = losses(net, {k: v[idx] for k, v in tr.items()}, device, amp_dtype)
            loss = pl.mean() + args.value_weight * vl.mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch}, step {step}")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            sums += torch.stack([pl.sum(), vl.sum()]).detach()
            if b % 10 == 0:
                bar.set_postfix(policy=f"{pl.mean().item():.3f}", value=f"{vl.mean().item():.3f}")
        bar.close()
        train_policy, train_value = sums[0].item() / n_train, sums[1].item() / n_train
        rows.append({"epoch": epoch, "steps": step, "lr": sched.get_last_lr()[0], **common,
                     "train_loss": train_policy + args.value_weight * train_value,
                     "train_policy_loss": train_policy, "train_value_loss": train_value,
                     **evaluate(net, val, device, amp_dtype, 1024, args.value_weight),
                     "wall_s": round(time.perf_counter() - t0, 3)})
        log.write(rows[-1])
        if not args.quiet:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  file=sys.stderr)
    log.close()

    save_weights({k: v.float().cpu() for k, v in net.state_dict().items()}, args.out, "f32",
                 {"trained_by": "scripts/train.py", "init": os.path.basename(args.init), "shards": len(shards),
                  "policy_target": args.policy_target,
                  "examples": n_train, "epochs": args.epochs, "seed": args.seed})
    return {"out": args.out, "shards": len(shards), "train_examples": n_train, "val_examples": n_val,
            "epochs": args.epochs, "steps": step, "device": str(device),
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "first": rows[0], "last": rows[-1], "wall_s": round(time.perf_counter() - t0, 3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, metavar="DIR",
                    help="folder searched recursively for shard-*.safetensors")
    ap.add_argument("--init", required=True, metavar="W", help="weights to start from (safetensors)")
    ap.add_argument("--out", required=True, metavar="W2", help="trained weights to write (safetensors, atomically)")
    ap.add_argument("--epochs", metavar="E", type=int, default=2, help="passes over the window (default 2)")
    ap.add_argument("--batch-size", metavar="B", type=int, default=256, help="examples per step (default 256)")
    ap.add_argument("--lr", type=float, default=3e-4, help="peak learning rate, cosine to lr/10 (default 3e-4)")
    ap.add_argument("--warmup", type=int, default=100, metavar="STEPS",
                    help="linear learning-rate warm-up, at most a quarter of the steps (default 100)")
    ap.add_argument("--weight-decay", metavar="WD", type=float, default=1e-4,
                    help="AdamW decay on weight matrices (default 1e-4)")
    ap.add_argument("--value-weight", metavar="W", type=float, default=1.0, help="weight of the value loss (default 1)")
    ap.add_argument("--dropout", metavar="P", type=float, default=0.1, help="dropout while training (BlobMaster: 0.1)")
    ap.add_argument("--policy-target", choices=["visits", "chosen"], default="visits",
                    help="train the policy on the root visit shares (default) or on the action a greedy search takes")
    ap.add_argument("--window", type=int, default=20, metavar="N", help="use the newest N shards (0: all; default 20)")
    ap.add_argument("--val-fraction", metavar="F", type=float, default=0.05,
                    help="examples held out for validation (default 0.05)")
    ap.add_argument("--device", metavar="DEV", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    ap.add_argument("--amp", choices=["auto", "off"], default="auto", help="mixed precision on CUDA (default auto)")
    ap.add_argument("--threads", metavar="T", type=int, default=0,
                    help="CPU threads for PyTorch (default: PyTorch's choice)")
    ap.add_argument("--seed", metavar="S", type=int, default=0,
                    help="seed of the split, shuffling, dropout (default 0)")
    ap.add_argument("--log", metavar="FILE", help="per-epoch metrics: .jsonl (JSON lines) or .csv")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines on stderr")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not 0 <= args.val_fraction < 1 or args.window < 0:
        ap.error("need --epochs ≥ 1, --batch-size ≥ 1, 0 ≤ --val-fraction < 1, --window ≥ 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        summary = train(args)
    except (DataError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

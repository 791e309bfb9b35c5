"""A fair PyTorch baseline for engine's CUDA forward: BlobNet at its best in PyTorch, one JSON line per measurement.

    python -m scripts.torch_gpu_baseline [--weights net.safetensors] [--check net_io.json] [--device cuda|cpu]
                                         [--compile fp16,fp32] [--variants eager,graph,...] [--dry-run] [BATCH ...]

What makes it fair (issue 17, item 4), against `engine bench --device cuda:0`:
- models: BlobNet as PyTorch runs it ("unfolded": nn.TransformerEncoderLayer, whose eval fast path stays on) and
  "folded" as engine runs it (one-token attention folded into one linear A = W_out·W_v, c = W_out·b_v + b_out,
  computed in float64 like src/net/weights.rs fold_attention);
- dtypes: "fp16" (weights `.half()`, no autocast) and "fp32" with TF32 tensor cores on;
- variants: "eager"; "compile" (torch.compile(mode="max-autotune", fullgraph=True, dynamic=False), its own CUDA
  graphs; for the dtypes in --compile); "graph" (one hand-captured torch.cuda.CUDAGraph); "graph_x8" (8 graphs
  replayed on 8 streams, against engine's ring with 8 in flight); "graph_pinned" (the graph also copies f32
  inputs and masks in from pinned host memory and policy and value out, and the host waits for each batch:
  against engine's direct forward, copies included);
- one process per batch size (the script runs itself per BATCH), so every compile sees one static shape;
- ≥20 warm-up replays, then 5 timed repeats between CUDA events; the line gives their median;
- inputs like engine bench's (src/net/synthetic.rs encoder_like_inputs: hand, trick order, played bits, ratios), all
  actions legal; the timed step includes the masked softmax, as engine's kernel does;
- every variant's own callable is first checked on net_io.json's cases (tiled to the batch) at engine's FP16
  tolerances (tests/gpu.rs): policy relative L2 ≤ 2e-3, |value diff| ≤ 5e-3;
- weights: --weights (default the vectors' net.safetensors, the net the parity tests use; engine bench's timing does
  not depend on the values, only on the architecture, which is the same);
- the kernels the profiler saw (heaviest first) are in each line, and `tensor_core_kernels` picks out those whose
  names mark tensor-core GEMMs (TENSOR_CORE below), so a reader sees they ran.

--device cpu is a smoke mode for machines without a GPU (no graphs, wall-clock timing; its figures mean nothing);
--dry-run is that mode shrunk to seconds (one warm-up and one batch per repeat, no compile). Exit status 1 if a
variant errored or a check failed (on the CPU only the fp32 checks count: FP16 there is emulated, other rounding).
"""
import argparse
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .blobnet import Dims, StateDict, load_weights, masked_policy, net_from_state_dict, script_command
from .shard_format import INPUT_DIM, POLICY_DIM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(REPO, "tests", "vectors")
POLICY_REL_L2, VALUE_ABS = 2e-3, 5e-3  # engine's FP16 parity limits (tests/gpu.rs)
STREAMS = 8  # engine's ring in self-play keeps 8 batches in flight
REPEATS = 5
# Kernel names that mark tensor-core GEMMs: cuBLAS/cuBLASLt (sm90_xmma_*, nvjet_*, *_s16816gemm_*), CUTLASS
# (*tensorop*, wgmma), and Inductor's Triton GEMM templates (triton_tem_*: tl.dot on FP16/TF32).
TENSOR_CORE = re.compile(r"xmma|nvjet|wgmma|hmma|cutlass|tensorop|s16816|triton_tem", re.I)

Outputs = tuple[torch.Tensor, torch.Tensor]  # (policy, value)
Pairs = list[tuple[torch.Tensor, torch.Tensor]]  # (x, mask) buffers, or (destination, source) copies
Enqueue = Callable[[int], Outputs]
Variant = tuple[int, bool, Enqueue, Pairs]  # streams, copies, enqueue, inputs: see `variants`


class FoldedBlobNet(nn.Module):
    """BlobNet as engine computes it: each layer's attention on one token is one linear map (spec §3.4)."""

    def __init__(self, state_dict: StateDict, layers: int) -> None:
        super().__init__()
        sd = {k: v.double() for k, v in state_dict.items()}

        def linear(w: torch.Tensor, b: torch.Tensor) -> nn.Linear:
            m = nn.Linear(w.shape[1], w.shape[0])
            m.weight.data, m.bias.data = w.float().clone(), b.float().clone()
            return m

        def norm(prefix: str) -> nn.LayerNorm:
            m = nn.LayerNorm(sd[prefix + ".weight"].shape[0])
            m.weight.data, m.bias.data = sd[prefix + ".weight"].float(), sd[prefix + ".bias"].float()
            return m

        self.embed = linear(sd["input_embedding.weight"], sd["input_embedding.bias"])
        self.input_norm = norm("input_norm")
        self.position = nn.Parameter(sd["positional_encoding"].reshape(-1).float())
        self.attention, self.norm1, self.ffn1, self.ffn2, self.norm2 = (nn.ModuleList() for _ in range(5))
        for i in range(layers):
            p = f"transformer.layers.{i}."
            d = sd[p + "self_attn.out_proj.weight"].shape[0]
            w_v, b_v = sd[p + "self_attn.in_proj_weight"][2 * d:], sd[p + "self_attn.in_proj_bias"][2 * d:]
            w_out, b_out = sd[p + "self_attn.out_proj.weight"], sd[p + "self_attn.out_proj.bias"]
            self.attention.append(linear(w_out @ w_v, w_out @ b_v + b_out))
            self.norm1.append(norm(p + "norm1"))
            self.ffn1.append(linear(sd[p + "linear1.weight"], sd[p + "linear1.bias"]))
            self.ffn2.append(linear(sd[p + "linear2.weight"], sd[p + "linear2.bias"]))
            self.norm2.append(norm(p + "norm2"))
        self.policy_hidden = linear(sd["policy_fc.0.weight"], sd["policy_fc.0.bias"])
        self.policy_out = linear(sd["policy_fc.3.weight"], sd["policy_fc.3.bias"])
        self.value_hidden = linear(sd["value_fc.0.weight"], sd["value_fc.0.bias"])
        self.value_out = linear(sd["value_fc.3.weight"], sd["value_fc.3.bias"])

    def forward(self, x: torch.Tensor) -> Outputs:
        h = self.input_norm(self.embed(x)) + self.position
        layers = zip(self.attention, self.norm1, self.ffn1, self.ffn2, self.norm2, strict=True)
        for attention, norm1, ffn1, ffn2, norm2 in layers:
            h = norm1(h + attention(h))
            h = norm2(h + ffn2(F.relu(ffn1(h))))
        logits = self.policy_out(F.relu(self.policy_hidden(h)))
        return logits, torch.tanh(self.value_out(F.relu(self.value_hidden(h)))).squeeze(-1)


def encoder_like_inputs(rows: int, seed: int = 0) -> torch.Tensor:
    """Rows shaped like engine bench's (src/net/synthetic.rs): 13 hand bits, a 3-card trick in play order, 20 played
    bits, and dims 156..202 each 0, 1, -1 or U(0, 1.5); the context dims stay 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(rows, INPUT_DIM)
    x.scatter_(1, torch.randint(0, 52, (rows, 13), generator=g), 1.0)
    x.scatter_(1, torch.randint(52, 104, (rows, 3), generator=g), torch.tensor([1.0, 2.0, 3.0]).expand(rows, 3))
    x.scatter_(1, torch.randint(104, 156, (rows, 20), generator=g), 1.0)
    pick = torch.randint(0, 4, (rows, 46), generator=g)
    ratio = torch.rand(rows, 46, generator=g) * 1.5
    x[:, 156:202] = torch.where(pick == 0, 0.0, torch.where(pick == 1, 1.0, torch.where(pick == 2, -1.0, ratio)))
    return x


def net_io_batch(cases: list[dict[str, Any]], rows: int) -> tuple[torch.Tensor, ...]:
    """net_io.json's inputs, masks and expected outputs, tiled to `rows` rows."""
    idx = [i % len(cases) for i in range(rows)]
    pick = lambda key: torch.tensor([cases[i][key] for i in idx], dtype=torch.float32)  # noqa: E731
    return pick("input"), pick("mask") != 0, pick("policy"), pick("value")


class Step:
    """One batch of one model in one dtype: static device buffers (f32 inputs, bool masks) and the call that runs
    the net on them and returns (policy f32, value f32). Graph variants capture exactly this call."""

    def __init__(self, net: nn.Module, dtype: torch.dtype, rows: int, device: torch.device) -> None:
        self.net, self.dtype = net, dtype
        self.x = torch.zeros(rows, INPUT_DIM, device=device)
        self.mask = torch.ones(rows, POLICY_DIM, dtype=torch.bool, device=device)

    def __call__(self) -> Outputs:
        logits, value = self.net(self.x.to(self.dtype))
        return masked_policy(logits, self.mask), value.float()


def capture(fn: Callable[[], Outputs],
            copies: tuple[Pairs, Callable[[Outputs], Pairs]] | None = None) -> tuple[torch.cuda.CUDAGraph, Outputs]:
    """A CUDA graph of fn() (after warm-up on a side stream, as PyTorch requires) and its static outputs; `copies`
    (in_pairs, out_pairs) adds pinned-host → device copies before and device → pinned-host copies after."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        if copies:
            for dst, src in copies[0]:
                dst.copy_(src, non_blocking=True)
        out = fn()
        if copies:
            for dst, src in copies[1](out):
                dst.copy_(src, non_blocking=True)
    return graph, out


def check(outputs: Outputs, want_policy: torch.Tensor, want_value: torch.Tensor) -> dict[str, Any]:
    """Relative L2 of the policy and max |value diff| against net_io.json, and whether both are within limits."""
    policy, value = (t.float().cpu() for t in outputs)
    rel = ((policy - want_policy).norm() / want_policy.norm()).item()
    dv = (value - want_value).abs().max().item()
    return {"policy_rel_l2": rel, "value_abs": dv, "ok": rel <= POLICY_REL_L2 and dv <= VALUE_ABS}


def kernel_names(run: Callable[[], object], cuda: bool, top: int = 12) -> list[str]:
    """The ops (CPU) or GPU kernels the profiler saw while `run()` ran, heaviest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        run()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    if cuda:
        timed = [(getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0), e.key) for e in events]
    else:
        timed = [(e.self_cpu_time_total, e.key) for e in events]
    return [name for t, name in sorted(timed, reverse=True) if t > 0][:top]


def repeat(call: Callable[[], Outputs]) -> Enqueue:
    """enqueue(n) for a callable that runs one batch: n batches, the last one's outputs."""
    def enqueue(n: int) -> Outputs:
        for _ in range(n):
            out = call()
        return out
    return enqueue


def variants(step: Step, cuda: bool, compiled: bool) -> list[tuple[str, Callable[[], Variant]]]:
    """[(name, build)]: build() sets the variant up and returns (streams, copies, enqueue, inputs), where enqueue(n)
    puts n batches in flight and returns the last outputs and `inputs` are the (x, mask) buffers it reads. Built one
    at a time, so a variant that fails to build fails alone."""
    own = [(step.x, step.mask)]
    out = [("eager", lambda: (1, False, repeat(step), own))]
    if cuda:
        out += [("graph", lambda: graph_variant(step)), (f"graph_x{STREAMS}", lambda: streams_variant(step)),
                ("graph_pinned", lambda: pinned_variant(step))]
    if compiled:  # last: slow to build, so a time limit cuts it before the others
        def build() -> Variant:
            fast = torch.compile(step.__call__, mode="max-autotune", fullgraph=True, dynamic=False)

            def call() -> Outputs:
                torch.compiler.cudagraph_mark_step_begin()  # each call a new step: its outputs replace the last
                return fast()
            return 1, False, repeat(call), own
        out.append(("compile", build))
    return out


def graph_variant(step: Step) -> Variant:
    """One hand-captured graph replayed on the current stream."""
    graph, out = capture(step)

    def replay() -> Outputs:
        graph.replay()
        return out
    return 1, False, repeat(replay), [(step.x, step.mask)]


def streams_variant(step: Step) -> Variant:
    """STREAMS graphs, each with its own buffers, replayed round-robin on STREAMS streams."""
    steps = [Step(step.net, step.dtype, step.x.shape[0], step.x.device) for _ in range(STREAMS)]
    graphs = [(torch.cuda.Stream(), *capture(s)) for s in steps]

    def in_flight(n: int) -> Outputs:
        main = torch.cuda.current_stream()
        for i, (stream, graph, _) in enumerate(graphs):
            stream.wait_stream(main)
            with torch.cuda.stream(stream):
                for _ in range(n // STREAMS + (i < n % STREAMS)):
                    graph.replay()
        for stream, _, _ in graphs:
            main.wait_stream(stream)
        return graphs[0][2]  # stream 0 always runs the first batch

    return STREAMS, False, in_flight, [(s.x, s.mask) for s in steps]


def pinned_variant(step: Step) -> Variant:
    """One graph that also copies inputs and masks in from pinned host memory and the outputs back; the host waits
    for each batch, as engine's direct forward does."""
    rows = step.x.shape[0]
    host_x, host_mask = step.x.cpu().pin_memory(), step.mask.cpu().pin_memory()
    host_policy, host_value = torch.empty(rows, POLICY_DIM).pin_memory(), torch.empty(rows).pin_memory()
    graph, _ = capture(step, ([(step.x, host_x), (step.mask, host_mask)],
                              lambda out: [(host_policy, out[0]), (host_value, out[1])]))

    def round_trip() -> Outputs:
        graph.replay()
        torch.cuda.current_stream().synchronize()
        return host_policy, host_value
    return 1, True, repeat(round_trip), [(host_x, host_mask)]


def fill(inputs: Pairs, x: torch.Tensor, mask: torch.Tensor) -> None:
    for dst_x, dst_mask in inputs:
        dst_x.copy_(x)
        dst_mask.copy_(mask)


def time_per_batch(enqueue: Enqueue, n: int, cuda: bool) -> list[float]:
    """µs per batch of each of REPEATS runs of n batches (CUDA events on the current stream, else wall clock)."""
    times = []
    for _ in range(REPEATS):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            enqueue(n)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3 / n)
        else:
            t0 = time.perf_counter()
            enqueue(n)
            times.append((time.perf_counter() - t0) * 1e6 / n)
    return times


def measure_batch(args: argparse.Namespace, rows: int) -> bool:
    """Every model × dtype × variant at one batch size: one JSON line each; returns False if any failed."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    state_dict = load_weights(args.weights)
    with open(args.check) as f:
        cases = json.load(f)["cases"]
    check_x, check_mask, want_policy, want_value = net_io_batch(cases, rows)
    bench_x = encoder_like_inputs(rows)
    base = {"what": "torch_baseline", "batch": rows, "device": torch.cuda.get_device_name(device) if cuda else "cpu",
            "torch": torch.__version__, "pid": os.getpid(), "tf32": cuda}
    ok = True
    for model in ("folded", "unfolded"):
        for dtype_name, dtype in (("fp16", torch.float16), ("fp32", torch.float32)):
            if model == "folded":
                net = FoldedBlobNet(state_dict, Dims.infer(state_dict).layers)
            else:
                net = net_from_state_dict(state_dict, args.weights)
            net = net.eval().to(device, dtype)
            step = Step(net, dtype, rows, device)
            with torch.inference_mode():
                for name, build in variants(step, cuda, dtype_name in args.compile):
                    if args.variants and name not in args.variants:
                        continue
                    line = {**base, "model": model, "dtype": dtype_name, "variant": name}
                    try:
                        streams, copies, enqueue, inputs = build()
                        line.update(streams=streams, copies=copies)
                        fill(inputs, check_x, check_mask)
                        line["check"] = check(enqueue(1), want_policy, want_value)
                        fill(inputs, bench_x, torch.ones_like(check_mask))
                        enqueue(args.warmup)
                        line["kernels"] = kernel_names(functools.partial(enqueue, args.iters), cuda)
                        line["tensor_core_kernels"] = [k for k in line["kernels"] if TENSOR_CORE.search(k)]
                        reps = time_per_batch(enqueue, args.iters, cuda)
                        us = statistics.median(reps)
                        line.update(warmup=args.warmup, iters=args.iters, reps_us=reps, us_per_batch=us,
                                    evals_per_s=rows * 1e6 / us)
                        # FP16 on the CPU is emulated (other accumulation): reported there, enforced on the GPU.
                        ok &= line["check"]["ok"] or not (cuda or dtype_name == "fp32")
                    except Exception as e:  # noqa: BLE001 (one variant failing must not hide the others)
                        line["error"] = f"{type(e).__name__}: {e}"
                        ok = False
                    print(json.dumps(line), flush=True)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("batches", nargs="*", type=int, default=[64, 256, 1024, 4096])
    ap.add_argument("--weights", default=os.path.join(VECTORS, "net.safetensors"))
    ap.add_argument("--check", default=os.path.join(VECTORS, "net_io.json"), metavar="NET_IO_JSON")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compile", default="fp16,fp32", help="dtypes to also run under torch.compile ('' for none)")
    ap.add_argument("--variants", default="", help="only these variants (comma-separated; default all)")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up batches before timing (at least 20 on a GPU)")
    ap.add_argument("--iters", type=int, default=200, help="batches per timed repeat")
    ap.add_argument("--dry-run", action="store_true", help="CPU smoke run: tiny, seconds, no compile")
    ap.add_argument("--one-batch", type=int, help=argparse.SUPPRESS)  # the per-batch child process
    args = ap.parse_args()
    args.compile = [d for d in args.compile.split(",") if d]
    args.variants = [v for v in args.variants.split(",") if v]
    if args.dry_run:
        args.device, args.compile, args.warmup, args.iters = "cpu", [], 1, 1
    elif args.device != "cpu" and args.warmup < 20:
        ap.error("--warmup: at least 20 warm-up batches on a GPU")
    if args.one_batch:
        torch.manual_seed(0)
        sys.exit(0 if measure_batch(args, args.one_batch) else 1)
    failed = False
    for rows in args.batches:
        child, env = script_command("torch_gpu_baseline", "--one-batch", rows, "--weights", args.weights,
                                    "--check", args.check, "--device", args.device,
                                    "--compile", ",".join(args.compile), "--variants", ",".join(args.variants),
                                    "--warmup", args.warmup, "--iters", args.iters)
        failed |= subprocess.run(child, env=env).returncode != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

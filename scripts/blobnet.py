"""BlobNet in PyTorch, written from the spec (blob-reference.md §3), with BlobMaster's state_dict key names.

Shared by the scripts in this folder: the model, its key/shape table, checkpoint reading, and safetensors
reading and (atomic) writing, and the command that runs another of them. `engine` reads what `save_weights` writes.
"""
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .shard_format import INPUT_DIM, POLICY_DIM

StrPath = str | os.PathLike[str]
StateDict = Mapping[str, torch.Tensor]
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


class Dims:
    """Architecture sizes; the defaults are the ones every BlobMaster run used (spec §3.1)."""

    def __init__(self, d: int = 256, layers: int = 6, ffn: int = 1024, policy_hidden: int = 256,
                 value_hidden: int = 128) -> None:
        self.d, self.layers, self.ffn = d, layers, ffn
        self.policy_hidden, self.value_hidden = policy_hidden, value_hidden

    def __eq__(self, other: object) -> bool:
        return vars(self) == vars(other)

    def __repr__(self) -> str:
        return "Dims(" + ", ".join(f"{k}={v}" for k, v in vars(self).items()) + ")"

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every state_dict key with its shape, in the order PyTorch saves them (spec §3.2)."""
        d, f = self.d, self.ffn
        shapes = {
            "positional_encoding": (1, 1, d),
            "input_embedding.weight": (d, INPUT_DIM), "input_embedding.bias": (d,),
            "input_norm.weight": (d,), "input_norm.bias": (d,),
        }
        for i in range(self.layers):
            p = f"transformer.layers.{i}."
            shapes.update({
                p + "self_attn.in_proj_weight": (3 * d, d), p + "self_attn.in_proj_bias": (3 * d,),
                p + "self_attn.out_proj.weight": (d, d), p + "self_attn.out_proj.bias": (d,),
                p + "linear1.weight": (f, d), p + "linear1.bias": (f,),
                p + "linear2.weight": (d, f), p + "linear2.bias": (d,),
                p + "norm1.weight": (d,), p + "norm1.bias": (d,),
                p + "norm2.weight": (d,), p + "norm2.bias": (d,),
            })
        ph, vh = self.policy_hidden, self.value_hidden
        shapes.update({
            "policy_fc.0.weight": (ph, d), "policy_fc.0.bias": (ph,),
            "policy_fc.3.weight": (POLICY_DIM, ph), "policy_fc.3.bias": (POLICY_DIM,),
            "value_fc.0.weight": (vh, d), "value_fc.0.bias": (vh,),
            "value_fc.3.weight": (1, vh), "value_fc.3.bias": (1,),
        })
        return shapes

    @staticmethod
    def infer(state_dict: StateDict) -> "Dims":
        """Sizes read from the tensor shapes (the defaults where a key is missing; `check` then names it)."""
        def dim(key: str, axis: int, default: int) -> int:
            t = state_dict.get(key)
            return t.shape[axis] if t is not None and t.dim() > axis else default

        default = Dims()
        layers = {int(m.group(1)) for k in state_dict if (m := re.match(r"transformer\.layers\.(\d+)\.", k))}
        return Dims(
            d=dim("input_embedding.weight", 0, default.d),
            layers=max(layers) + 1 if layers else default.layers,
            ffn=dim("transformer.layers.0.linear1.weight", 0, default.ffn),
            policy_hidden=dim("policy_fc.0.weight", 0, default.policy_hidden),
            value_hidden=dim("value_fc.0.weight", 0, default.value_hidden),
        )


class ShapeError(ValueError):
    pass


def check_state_dict(state_dict: StateDict, source: str = "state_dict") -> Dims:
    """Checks every key and shape against the architecture its shapes imply; returns its Dims.

    Raises ShapeError naming the first bad key with its expected and found shape (or a missing or
    unexpected key, or a non-finite value)."""
    dims = Dims.infer(state_dict)
    expected = dims.state_dict_shapes()
    for key, shape in expected.items():
        if key not in state_dict:
            raise ShapeError(f"{source}: missing key {key!r} (expected shape {list(shape)}, architecture {dims})")
        t = state_dict[key]
        if not torch.is_tensor(t):
            raise ShapeError(f"{source}: {key!r} is a {type(t).__name__}, expected a tensor of shape {list(shape)}")
        if tuple(t.shape) != shape:
            raise ShapeError(f"{source}: {key!r} has shape {list(t.shape)}, expected {list(shape)} "
                             f"(architecture {dims})")
        if not t.is_floating_point():
            raise ShapeError(f"{source}: {key!r} has dtype {t.dtype}, expected a floating-point tensor")
        if not torch.isfinite(t.float().sum()) and not torch.isfinite(t).all():  # the sum is the fast test
            raise ShapeError(f"{source}: {key!r} holds non-finite values")
    extra = sorted(set(state_dict) - set(expected))
    if extra:
        more = " …" if len(extra) > 5 else ""
        raise ShapeError(f"{source}: unexpected key(s) {extra[:5]}{more} for architecture {dims}")
    return dims


class BlobNet(nn.Module):
    """BlobMaster's BlobNet: Linear → LayerNorm → + positional vector → post-norm Transformer encoder layers on a
    sequence of length 1 → policy logits (52) and tanh value. Construction order and initialisation follow
    BlobMaster's, so `torch.manual_seed(s); BlobNet()` gives BlobMaster's net for seed s (spec §3.5)."""

    def __init__(self, dims: Dims | None = None, heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        dims = dims or Dims()
        self.dims = dims
        d = dims.d
        self.input_embedding = nn.Linear(INPUT_DIM, d)
        self.input_norm = nn.LayerNorm(d)
        self.positional_encoding = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads if d % heads == 0 else 1, dims.ffn, dropout=dropout,
                                           activation="relu", batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, dims.layers, enable_nested_tensor=False)
        self.policy_fc = nn.Sequential(nn.Linear(d, dims.policy_hidden), nn.ReLU(), nn.Dropout(dropout),
                                       nn.Linear(dims.policy_hidden, POLICY_DIM))
        self.value_fc = nn.Sequential(nn.Linear(d, dims.value_hidden), nn.ReLU(), nn.Dropout(dropout),
                                      nn.Linear(dims.value_hidden, 1), nn.Tanh())
        # Every nn.Linear (out_proj included) Xavier-uniform with zero bias; in_proj keeps MHA's own init,
        # deep-copied into every layer.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, 256] → (logits [B, 52], unmasked; value [B])."""
        h = self.input_norm(self.input_embedding(x)).unsqueeze(1) + self.positional_encoding
        h = self.transformer(h).squeeze(1)
        return self.policy_fc(h), self.value_fc(h).squeeze(-1)


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log π over the legal actions (mask != 0); illegal entries are -inf."""
    return torch.log_softmax(logits.float().masked_fill(mask == 0, float("-inf")), dim=-1)


def masked_policy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the engine computes: softmax over the legal actions, exactly 0 on illegal ones."""
    return torch.softmax(logits.float().masked_fill(mask == 0, float("-inf")), dim=-1)


def net_from_state_dict(state_dict: StateDict, source: str = "state_dict", dropout: float = 0.1) -> BlobNet:
    """A BlobNet (architecture from the shapes) holding these weights, in float32."""
    dims = check_state_dict(state_dict, source)
    net = BlobNet(dims, dropout=dropout)
    net.load_state_dict({k: v.float() for k, v in state_dict.items()})
    return net


def state_dict_from_checkpoint(obj: object, source: str = "checkpoint") -> dict[str, Any]:
    """The state dict in a BlobMaster checkpoint: `network_state_dict` (training pipeline), `model_state_dict`
    (other savers) or a bare state dict (spec §3.6)."""
    if not isinstance(obj, dict):
        raise ShapeError(f"{source}: expected a dict (a state_dict or a checkpoint), found {type(obj).__name__}")
    for key in ("network_state_dict", "model_state_dict"):
        if key in obj:
            if not isinstance(obj[key], dict):
                raise ShapeError(f"{source}: {key!r} is a {type(obj[key]).__name__}, expected a state dict")
            return _strip_wrappers(obj[key])
    if obj and all(torch.is_tensor(v) for v in obj.values()):
        return _strip_wrappers(obj)
    raise ShapeError(f"{source}: neither 'network_state_dict' nor 'model_state_dict' and not a bare state dict "
                     f"(top-level keys: {sorted(map(str, obj))[:8]})")


def _strip_wrappers(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drops the key prefixes that DataParallel (`module.`) and torch.compile (`_orig_mod.`) add."""
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            k = k[len(prefix):] if k.startswith(prefix) else k
        out[k] = v
    return out


def load_weights(path: StrPath) -> dict[str, torch.Tensor]:
    """A safetensors state dict (any of f32/f16/bf16) as float32 tensors, checked against the architecture."""
    from safetensors.torch import load_file

    state_dict = {k: v.float() for k, v in load_file(str(path)).items()}
    check_state_dict(state_dict, str(path))
    return state_dict


def atomic_write(path: StrPath, write: Callable[[str], object]) -> None:
    """Calls write(tmp_path) on a temporary file in path's folder, fsyncs it and renames it over path. The file gets
    the mode a plain open() would give it (0666 less the umask), not mkstemp's private 0600."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back: there is no other portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_json(path: StrPath, obj: object) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
    atomic_write(path, write)


def save_weights(state_dict: StateDict, path: StrPath, dtype: str = "f32",
                 metadata: Mapping[str, object] | None = None) -> None:
    """Writes the state dict as safetensors with PyTorch key names and `{"format": "pt"}` metadata, atomically."""
    from safetensors.torch import save_file

    check_state_dict(state_dict, "weights to save")
    tensors = {k: v.detach().to("cpu", DTYPES[dtype]).contiguous() for k, v in state_dict.items()}
    meta = {"format": "pt", **{k: str(v) for k, v in (metadata or {}).items()}}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def script_command(module: str, *args: object) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run scripts.MODULE with this Python (`python -m scripts.MODULE ARGS`)
    from any working directory: the folder holding the scripts package goes first on PYTHONPATH."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    return [sys.executable, "-m", f"{__package__}.{module}", *map(str, args)], dict(os.environ, PYTHONPATH=path)

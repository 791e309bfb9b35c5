"""Convert a BlobMaster PyTorch checkpoint (.pth) to the safetensors file `engine` reads.

    python -m scripts.convert_checkpoint IN.pth OUT.safetensors [--dtype f32|f16|bf16]

IN may be a bare state_dict or a checkpoint dict holding it under `network_state_dict` (BlobMaster's training
pipeline: best_*.pth, cache/, permanent/) or `model_state_dict` (its other savers). Every key and shape is checked
against BlobNet's architecture (sizes read from the shapes; BlobMaster's default is 256 wide, 6 layers, FFN 1024,
4,917,301 parameters); a mismatch names the key with the expected and found shape. OUT keeps PyTorch's key names
(Q/K rows of in_proj included) and `{"format": "pt"}` metadata, and is written atomically. Then:

    engine info --weights OUT.safetensors

Note: BlobMaster's published checkpoints expect the v1 encoder layout (pass `--encoder v1` to engine commands).
"""
import argparse
import os
import pickle
import sys

import torch

from .blobnet import DTYPES, Dims, ShapeError, StrPath, check_state_dict, save_weights, state_dict_from_checkpoint


def convert(src: StrPath, dst: StrPath, dtype: str = "f32", trust_pickle: bool = False) -> Dims:
    """Converts src (.pth) to dst (.safetensors); returns the architecture's Dims."""
    try:
        # weights_only: tensors, containers and numbers only (a BlobMaster checkpoint is just that).
        obj = torch.load(src, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as e:
        raise ShapeError(f"{src}: holds objects other than tensors and plain containers ({e}); "
                         "rerun with --trust-pickle if you trust the file") from None
    state_dict = state_dict_from_checkpoint(obj, str(src))
    dims = check_state_dict(state_dict, str(src))
    save_weights(state_dict, dst, dtype, {"source": os.path.basename(src)})
    return dims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", metavar="IN.pth", help="BlobMaster checkpoint or bare state_dict (torch.save file)")
    ap.add_argument("output", metavar="OUT.safetensors", help="safetensors file to write (atomically)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32",
                    help="tensor dtype of the output (default f32; engine reads all three)")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="unpickle arbitrary objects (only for files you trust; default: tensors and containers only)")
    args = ap.parse_args()
    try:
        dims = convert(args.input, args.output, args.dtype, args.trust_pickle)
    except (ShapeError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    params = sum(torch.Size(shape).numel() for shape in dims.state_dict_shapes().values())
    print(f"wrote {args.output}: {dims}, {params:,} parameters, {args.dtype}")


if __name__ == "__main__":
    main()

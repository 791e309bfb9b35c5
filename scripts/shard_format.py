"""The engine's contract with the Python side, defined once: the network's input and policy sizes and the layout of
a training shard (`engine selfplay`'s output). Every script takes these from here; tests/python_scripts.rs checks
them against the engine's own (engine::net::{INPUT_DIM, POLICY_DIM}, engine::selfplay::SHARD_FORMAT_VERSION and
the tensors engine::selfplay::serialize writes).

    python -m scripts.shard_format    # these constants as one JSON object

Standard library only, so that it can be read without PyTorch or numpy.
"""

import json

# The encoded state a net reads (src/net/mod.rs INPUT_DIM) and the actions its policy covers (POLICY_DIM).
INPUT_DIM = 256
POLICY_DIM = 52
# The `format_version` a shard's metadata carries (src/selfplay/shard.rs SHARD_FORMAT_VERSION).
SHARD_FORMAT_VERSION = "2"
# Each tensor of a shard: its numpy dtype name and its shape after the row count, in the order the engine writes them.
SHARD_TENSORS: dict[str, tuple[str, tuple[int, ...]]] = {
    "state": ("float32", (INPUT_DIM,)),
    "policy": ("float32", (POLICY_DIM,)),
    "value": ("float32", ()),
    "mask": ("uint8", (POLICY_DIM,)),
    "unit": ("int64", ()),
}


def contract() -> dict[str, object]:
    """The constants above as plain JSON values."""
    return {
        "input_dim": INPUT_DIM,
        "policy_dim": POLICY_DIM,
        "shard_format_version": SHARD_FORMAT_VERSION,
        "shard_tensors": [{"name": name, "dtype": dtype, "shape": ["N", *tail]}
                          for name, (dtype, tail) in SHARD_TENSORS.items()],
    }


if __name__ == "__main__":
    print(json.dumps(contract()))

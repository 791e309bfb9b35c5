"""engine's Python side: BlobNet in PyTorch, checkpoint conversion, training, the generation loop, the shard reader,
benchmarks. Run a script as `python -m scripts.NAME` from the repository root (or with it on PYTHONPATH)."""

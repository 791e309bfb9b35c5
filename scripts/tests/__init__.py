"""The scripts' tests: `python -m unittest discover -s scripts/tests -t .` from the repository root."""

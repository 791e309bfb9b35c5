# Python side (the package scripts/): `make python-tests` builds the engine, sets up a virtual environment from
# scripts/requirements.txt (kept under target/, which git ignores) and runs scripts/tests/ (as scripts.tests.*, from
# the repository root); `make python-lint` runs ruff (ruff.toml) over scripts/.
PYTHON ?= python3
VENV ?= target/py-venv

.PHONY: python-tests python-venv python-lint

python-venv: $(VENV)/.installed

$(VENV)/.installed: scripts/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r scripts/requirements.txt
	touch $@

python-tests: python-venv
	cargo build --release
	PYTHONDONTWRITEBYTECODE=1 ENGINE_BIN=target/release/engine $(VENV)/bin/python -m unittest discover -s scripts/tests -t . -v

python-lint: python-venv
	$(VENV)/bin/ruff check scripts

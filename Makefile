# make run   — fresh machine: install, build the default dataset, run the main job, print the score
# make test  — fresh machine: install, run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pip on this kind of machine prints one warning per unreachable local index: hide that noise only
QUIET := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: install run test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build, so no multi-GB CUDA build is pulled; a torch already in the
# venv (e.g. a GPU user's own CUDA build) is kept.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0 2>&1 | $(QUIET)
	$(PY) -m pip install -q -e '.[test]' 2>&1 | $(QUIET)
	$(PY) -c "import dydiff, torch, lightning, hydra, gymnasium_robotics, minari, h5py, matplotlib"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) stages/collect.py
	$(PY) stages/pretrain.py progress=false
	$(PY) stages/policy.py algo=td3bc synth=dydiff progress=false

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check dydiff stages tests benchmarks

clean:
	rm -rf $(VENV) runs

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

# progress: a bar per epoch on a terminal, one line per epoch (with its ETA) when the output goes to a log file
run: install
	@echo "==> make run 1/3: the dataset (built-in maze2d-umaze, cpu preset; about 1 min to build, then cached)"
	$(PY) stages/collect.py
	@echo "==> make run 2/3: stage 1, the trajectory model, the dynamics ensemble and the reward model (about 8 min)"
	$(PY) stages/pretrain.py
	@echo "==> make run 3/3: stage 2, TD3+BC with DyDiff's synthetic rollouts, 60 epochs (about 5 min)"
	$(PY) stages/policy.py algo=td3bc synth=dydiff

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check dydiff stages tests benchmarks

clean:
	rm -rf $(VENV) runs

# make demo : set up .venv and run the embedded demo
# make test : set up .venv and run the whole test suite (what CI runs)
# make gpu-check : time the paper-scale models on the first CUDA device (needs a GPU)
# make rulegraph : redraw docs/rulegraph.svg, the rule graph the README shows (needs Graphviz's dot)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sambrats-installed
CORES ?= 2

.PHONY: setup demo test gpu-check rulegraph clean

setup: $(STAMP)

# torch and torchvision first, as the pinned matching pair, so that nothing pulls another torch.
# pip byte-compiles each package on one core as it installs it; instead the installs skip that
# and compileall does it once at the end on every core (a fresh clone's set-up on 2 cores: 2 min
# 3 s, was 2 min 41 s). As with pip, a file this Python cannot compile (torch ships helpers for
# Python 3.12) stays uncompiled: only a compileall failure without such a file fails the set-up.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet --no-compile torch==2.14.1 torchvision==0.29.1
	# sam2 is a source package: build it against this torch, without its CUDA extension.
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install --quiet --no-compile --no-build-isolation sam2==1.1.0
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > $(VENV)/compileall.log || grep -c "^\*\*\* Error" $(VENV)/compileall.log
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

# the paper-scale models on the first CUDA device (benchmarks/gpu_paper_scale.py)
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_paper_scale.py

rulegraph: $(STAMP)
	mkdir -p docs
	$(BIN)/snakemake --configfile config/demo.yaml --rulegraph | dot -Tsvg > docs/rulegraph.svg

clean:
	rm -rf results .snakemake

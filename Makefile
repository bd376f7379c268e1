# Every target works on a fresh clone: the first one run creates .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# This machine serves these two from local disk; elsewhere pip downloads them.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# Index for TORCH_PINS only, e.g. PIP_INDEX=https://download.pytorch.org/whl/cpu for PyTorch's CPU-only build
# (PyPI's Linux wheels bring the CUDA libraries). Empty: pip's configured index.
PIP_INDEX ?=
NOTEBOOKS := $(filter-out nbs/_%,$(wildcard nbs/*.ipynb))
# The fast-mode notebook runs of `make test`: this many at a time, the slowest started first.
NB_JOBS ?= 2
# The tests of `make test`: this many worker processes (pytest-xdist), each on one torch thread.
PYTEST_JOBS ?= 2
SLOW_FIRST := $(wildcard nbs/04_ptq.ipynb nbs/06_qat.ipynb nbs/03_fakequant.ipynb nbs/09_advanced_ptq.ipynb nbs/05c_integer.ipynb nbs/05c_integer_proof.ipynb nbs/10_deploy.ipynb nbs/08_pipeline.ipynb nbs/07a_sensitivity.ipynb nbs/05a_isa.ipynb nbs/05a_kernels.ipynb nbs/05b_x86.ipynb nbs/05b_x86_proof.ipynb nbs/02_observers.ipynb nbs/07_analysis.ipynb)

# The install stamp is named after pyproject.toml's content, not its date: nbdev-export rewrites the file unchanged.
INSTALLED := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)

.PHONY: demo bench test docs lab data check-export notebooks nbs-full

$(INSTALLED):
	@echo "== creating $(VENV) and installing PyTorch and quantnb[dev] (a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(PIP_INDEX),--index-url $(PIP_INDEX)) $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The whole study in one command: SampleNet trained once (then cached), quantized five ways, measured, and a report
# in report/ (report.html, report.md, results.json). DEMO_ARGS adds options, e.g. DEMO_ARGS=--force or DEMO_ARGS=--fast.
DEMO_ARGS ?=
demo: data $(INSTALLED)
	@SECONDS=0; $(BIN)/quantnb demo --out report/ $(DEMO_ARGS) && \
	echo "== make demo finished in $${SECONDS}s: open report/report.html"

# Every quantized form side by side in one process; rewrites its section of BENCHMARKS.md.
bench: data $(INSTALLED)
	$(BIN)/python benchmarks/run.py --write

# data first: on a fresh clone `make test` is the first command, and it fails fast with a clear message without the data.
test: data $(INSTALLED)
	@SECONDS=0; \
	$(MAKE) --no-print-directory check-export && \
	$(BIN)/python tools/make_readme.py --check && \
	$(MAKE) --no-print-directory notebooks && \
	$(MAKE) --no-print-directory docs && \
	QUANTNB_FAST=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(PYTEST_JOBS) && \
	echo "== make test passed in $${SECONDS}s"

# The library must be what nbdev-export makes from the notebooks.
check-export: $(INSTALLED)
	@tmp=$$(mktemp -d) && cp -r quantnb $$tmp/ && $(BIN)/nbdev-export && \
	if diff -r -x __pycache__ $$tmp/quantnb quantnb >/dev/null; then echo "== export: quantnb/ matches the notebooks"; \
	else echo "!! nbdev-export changed quantnb/: the library was out of sync with nbs/ (review git diff, commit)"; exit 1; fi

# Every notebook, top to bottom, in a real Jupyter kernel (what "Run All" does), in fast mode; their nbdev_export()
# cells are left out, since check-export has done that job and notebooks run side by side (tools/run_notebook.py).
notebooks: data $(INSTALLED)
	@SECONDS=0; tools/run_notebooks.sh $(BIN)/python $(NB_JOBS) $(SLOW_FIRST) $(filter-out $(SLOW_FIRST),$(NOTEBOOKS)) && \
	echo "== every notebook ran in $${SECONDS}s ($(NB_JOBS) at a time)"

# Full run (no fast mode) that stores outputs in the notebooks, as committed.
nbs-full: data $(INSTALLED)
	@for nb in $(NOTEBOOKS); do $(BIN)/jupyter nbconvert --to notebook --execute --inplace --log-level=ERROR $$nb || exit 1; done
	$(BIN)/nbdev-clean

docs: $(INSTALLED)
	$(BIN)/python tools/build_docs.py
	$(BIN)/python tools/make_readme.py

lab: data $(INSTALLED)
	$(BIN)/jupyter lab --notebook-dir=nbs $$([ "$$(id -u)" = 0 ] && echo --allow-root)

data:
	@$(PYTHON) tools/get_data.py

# Two commands: `make quickstart` (the main job) and `make test`. Both create .venv if missing
# and install what they need: torch first (so no other requirement pulls a different build),
# then the package with its extras, pinned by constraints.txt. A second run installs nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_VERSION ?= 2.13.0
# Extra pip arguments for torch only, e.g. TORCH_PIP_ARGS="--index-url <your CUDA wheel index>"
TORCH_PIP_ARGS ?=
TEST_EXTRAS ?= dev,text,ray,wandb,swanlab,lora,docs,sb3,trl
QUICKSTART_EXTRAS ?= text
BENCH_EXTRAS ?= dev,text,ray,wandb,swanlab,lora,trl
PYTEST_ARGS ?=
# test processes (pytest-xdist): one per core; TEST_WORKERS=0 runs the suite in this process
TEST_WORKERS ?= auto

help:
	@echo "make quickstart   install (if needed) and run the end-to-end tour, ending in a report"
	@echo "make test         install (if needed) and run the test suite"
	@echo "make docs         build the documentation site into site/ (mkdocs build --strict; regenerates docs/reference and docs/results)"
	@echo "make bench        run the speed benchmarks (writes benchmarks/results/*.json)"
	@echo "make lock         re-resolve constraints.txt from the current dependency ranges"
	@echo "make lint         ruff"
	@echo "make gpu-wheels   download the pure-Python wheels gpu-check may need into .whl/ (run where PyPI works)"
	@echo "make gpu-check    on a CUDA machine: every pipeline at tiny size on the GPU -> runs/gpu-check/summary.json"
	@echo "                  (PYTHON=... picks the interpreter; no venv, no download; GPU_CHECK_ARGS=--dry-run etc.)"

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23" 2>/dev/null || true

# torch before anything else: the CPU build where no CUDA GPU is visible, the CUDA build where one is.
$(VENV)/.torch-$(TORCH_VERSION): | $(PY)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "CUDA GPU found: installing torch==$(TORCH_VERSION) (CUDA build)"; \
	else \
		echo "no CUDA GPU: installing torch==$(TORCH_VERSION) (CPU build)"; \
	fi
	$(PIP) install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	@touch $@

$(VENV)/.installed-%: pyproject.toml constraints.txt $(VENV)/.torch-$(TORCH_VERSION)
	$(PIP) install -q -c constraints.txt -e ".[$*]"
	@$(PY) -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(0 if v == '$(TORCH_VERSION)' else 'torch was replaced: ' + torch.__version__)"
	@touch $@

install-test: $(VENV)/.installed-$(TEST_EXTRAS)
install-quickstart: $(VENV)/.installed-$(QUICKSTART_EXTRAS)

test: install-test
	$(PY) -m pytest -q -m "not slow and not gpu" -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-slow: install-test
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

quickstart: install-quickstart
	$(VENV)/bin/rl4rec quickstart

bench: $(VENV)/.installed-$(BENCH_EXTRAS)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks examples

# Resolve every extra in a scratch venv and write the pins (torch pinned without its local tag,
# so the same file serves the CPU and the CUDA build).
lock:
	rm -rf .lockenv && python3 -m venv .lockenv
	.lockenv/bin/pip install -q "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	.lockenv/bin/pip install -q ".[text,lora,ray,wandb,swanlab,trl,docs,sb3,dev]"
	.lockenv/bin/pip freeze --exclude rl4rec | sed -E 's/^(torch==[^+]+)\+.*/\1/' | grep -v '^nvidia-\|^triton==' > constraints.txt
	rm -rf .lockenv

.PHONY: help test test-slow quickstart docs bench lint lock install-test install-quickstart

# GPU check: run on a CUDA machine with its own preinstalled stack (torch, transformers, accelerate): no venv,
# no registry. rl4rec runs from src/ (PYTHONPATH, nothing installed); the pure-Python deps that do not import
# (gymnasium, farama-notifications, cloudpickle, typing-extensions, tqdm) are installed from the wheels in
# .whl/ into .whl/site/, never into the interpreter's site-packages. Bring .whl/ along from `make gpu-wheels`.
# Compiled deps (numpy, pyyaml, scipy, tokenizers, safetensors) must come with the stack.
PYTHON ?= python3
GPU_WHEELS ?= .whl
GPU_CHECK_OUT ?= runs/gpu-check/summary.json
GPU_CHECK_ARGS ?=
WHEEL_PY := $(if $(wildcard $(PY)),$(PY),python3)

gpu-wheels:
	@mkdir -p $(GPU_WHEELS)
	$(WHEEL_PY) -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
		-c constraints.txt -d $(GPU_WHEELS) $$($(WHEEL_PY) benchmarks/gpu_check.py --wheel-list)
	@$(WHEEL_PY) benchmarks/gpu_check.py --check-wheels $(GPU_WHEELS)

gpu-check:
	PYTHONPATH=src:$(GPU_WHEELS)/site$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) benchmarks/gpu_check.py --install-missing $(GPU_WHEELS)
	PYTHONPATH=src:$(GPU_WHEELS)/site$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) benchmarks/gpu_check.py --wheels $(GPU_WHEELS) \
		--out $(GPU_CHECK_OUT) $(GPU_CHECK_ARGS)

.PHONY: gpu-wheels gpu-check

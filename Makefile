# xner: `make demo` runs the main job on real data, `make test` runs the tests. Both set up what they need.
PY := .venv/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: help setup demo test test-all lint format clean study study-smoke

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## install the package, Apertium and the offline encoder (idempotent)
	@./scripts/setup.sh

demo: setup  ## fine-tune me5-small on English CoNLL-2003, test on English and zero-shot Swahili (~4 min + set-up)
	$(PY) train.py experiment=demo

test: setup  ## run the default test suite (offline, < 10 min on 2 cores)
	$(PY) -m pytest -q

test-all: setup  ## run every test, slow ones included
	$(PY) -m pytest -q -m ""

lint:  ## ruff
	$(PY) -m ruff check xner tests train.py evaluate.py predict.py

format:  ## ruff format + import sorting
	$(PY) -m ruff check --fix --select I xner tests train.py evaluate.py predict.py
	$(PY) -m ruff format xner tests train.py evaluate.py predict.py

clean:  ## remove run outputs (not the venv or caches)
	rm -rf logs outputs multirun .pytest_cache

study: setup  ## the distillation-depth study from scratch (hours on 2 CPU cores; resumable)
	./results/kd_depth/run_study.sh

study-smoke: setup  ## the study's code path on tiny subsets with a tiny encoder (a few minutes)
	SMOKE=1 ./results/kd_depth/run_study.sh

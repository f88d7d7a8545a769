# Two commands set up everything: `make demo` and `make test` (each creates .venv if needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean strip-notebooks

# --no-compile: byte-compiling every installed module took half of the install (14 of 30 s);
# Python compiles the few modules a run imports when it first imports them.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesgmm demo

# Bytecode: where the environment sets PYTHONDONTWRITEBYTECODE (this project's machines do),
# every fresh process of the suite (the notebooks' kernels, the CLI, multi-process and
# compile-cache tests' processes) compiled jax, NumPyro, scikit-learn and pandas from source
# again: 5.8 s against 2.0 s to import them. The suite lets Python keep the bytecode it
# compiles (in .venv and in __pycache__ folders, which git ignores).
test: $(STAMP)
	$(VENV)/bin/ruff check bayesgmm tests benchmarks examples notebooks
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n 2 --dist worksteal --durations=15

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesgmm tests benchmarks examples notebooks

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/run.py
	$(PY) benchmarks/streaming.py
	$(PY) benchmarks/streaming.py --estimator vi
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/bayes.py
	$(PY) benchmarks/gibbs.py
	$(PY) benchmarks/sweep_cost.py
	$(PY) benchmarks/split_merge_budget.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/cold_time.py

strip-notebooks: $(STAMP)
	$(PY) notebooks/strip_outputs.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

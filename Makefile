# The two set-up commands of the README: `make run` (main job) and `make test` (the test suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv run test
venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Main job: the most complete job that exists today (see README "Quick start"): train S1's
# CustomNet on Fashion-MNIST as its report did, then evaluate it once on the held-out test split.
run: venv
	$(BIN)/archsearch validate examples/*.yaml
	$(BIN)/archsearch train examples/s1_customnet.yaml --out runs/s1_customnet --force
	$(BIN)/archsearch evaluate runs/s1_customnet

test: venv
	$(BIN)/python -m pytest -q

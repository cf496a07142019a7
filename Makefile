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

# Main job: the most complete job that exists today (see README "Quick start").
run: venv
	$(BIN)/archsearch validate examples/*.yaml
	$(BIN)/archsearch summary examples/s1_customnet.yaml

test: venv
	$(BIN)/python -m pytest -q

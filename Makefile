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

# Main job (README "Quick start"): search the default Fashion-MNIST CNN space (SQLite default,
# studies/fmnist_cnn.db), re-evaluate the top 3 trials on the held-out test split over 3 seeds,
# export the winner, draw its explain figures and write the HTML report (which embeds them).
run: venv
	$(BIN)/archsearch run spaces/fmnist_cnn.yaml --trials 50
	$(BIN)/archsearch best --study fmnist_cnn --export exports/fmnist_cnn --force
	$(BIN)/archsearch explain exports/fmnist_cnn
	$(BIN)/archsearch report --study fmnist_cnn --bundle exports/fmnist_cnn --out studies/fmnist_cnn/report.html

test: venv
	$(BIN)/python -m pytest -q

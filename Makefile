# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint results docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) torch==2.13.0

$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.report: $(VENV)/.core
	$(PIP) -e '.[report]'
	touch $@

demo: $(VENV)/.report  ## train on the built-in digits, print metrics beside PCA on held-out digits, write a report
	$(BIN)/isthmus train 'digits[:1500]' -o runs/demo/digits.safetensors --overwrite \
		--set n_components=8 --set hidden_layer_sizes=[256,128] --set max_iter=200 --set random_state=0 \
		--set early_stopping=true --set n_iter_no_change=20
	$(BIN)/isthmus evaluate runs/demo/digits.safetensors 'digits[1500:]' --labels 'digits[1500:]' --train 'digits[:1500]'
	$(BIN)/isthmus report runs/demo/digits.safetensors 'digits[1500:]' -o runs/demo/report --overwrite

test: $(VENV)/.test  ## the whole suite
	$(BIN)/python -m pytest -n 2 -q

results:  ## docs/results.md from the figures the benches appended to bench/results/*.jsonl
	$(PY) docs/gen_results.py

docs: $(VENV)/.test  ## docs/cli.md from --help, then the site in build/site
	$(BIN)/python docs/gen_cli.py
	$(BIN)/mkdocs build --strict

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench docs
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs

# pvae-tune: the two front-door commands are `make demo` and `make test`.
# Both create the virtual environment from nothing when it is missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: test test-slow demo lint bench constraints clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	RAY_AUTH_MODE=disabled $(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	RAY_AUTH_MODE=disabled $(PY) -m pytest -m slow -q

demo: $(STAMP)
	RAY_AUTH_MODE=disabled $(PY) -m pvae.demo --out $(DEMO_OUT)

lint: $(STAMP)
	$(VENV)/bin/ruff check pvae tune analysis tests bench

bench: $(STAMP)
	$(PY) bench/bench_data.py

constraints: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//' > constraints.txt

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

# Two commands on a fresh clone, each doing its own set-up (README, "Two commands"):
#   make test   set up .venv if needed, then run the tests
#   make demo   set up .venv if needed, then run the demo
# .venv is (re)installed when it is missing or pyproject.toml is newer than its stamp, and left alone
# otherwise. `make test TORCH=cpu` takes torch from PyTorch's CPU wheel index on a new .venv (no CUDA
# libraries, about 4 GB less to download); the pins are read from pyproject.toml, their one home.

VENV := .venv
STAMP := $(VENV)/.installed
TORCH ?=
TORCH_PINS = $(shell grep -oE '"torch(audio)?==[^"]+"' pyproject.toml | tr -d '"')

.PHONY: test demo docs

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/higgs-tune demo

docs: $(STAMP)
	$(VENV)/bin/python -m mkdocs build --strict --site-dir site

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(if $(TORCH),$(VENV)/bin/pip install --index-url https://download.pytorch.org/whl/$(TORCH) $(TORCH_PINS))
	$(VENV)/bin/pip install -e '.[dev]'
	touch $(STAMP)

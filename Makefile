# `make demo` and `make test` each work as the first command on a fresh
# machine: they bootstrap .venv (and the Debian packages) when needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.bootstrapped

.PHONY: demo test lint vectors bench clean

$(STAMP): pyproject.toml scripts/bootstrap.sh
	PYTHON=$(PYTHON) bash scripts/bootstrap.sh
	touch $@

demo: $(STAMP)
	$(VENV)/bin/python demo/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench scripts demo

test: $(STAMP) lint
	$(VENV)/bin/pytest

vectors: $(STAMP)
	$(VENV)/bin/python scripts/make_vectors.py

bench: $(STAMP)
	bash scripts/bootstrap.sh --bench
	$(VENV)/bin/python bench/seal.py
	$(VENV)/bin/python -W ignore bench/kmip_sync.py
	$(VENV)/bin/python bench/bundle.py

clean:
	rm -rf $(VENV) .demo-root build src/*.egg-info

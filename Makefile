# Two commands for a newcomer: `make book` and `make test`. Everything else is plumbing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= laptop
FMNIST_DEB_DIR := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=

.PHONY: book test venv data browser nbval-refs bench clean

## venv: create .venv and install the pinned dependencies (re-runs when pyproject.toml changes)
venv: $(VENV)/.stamp-install
$(VENV)/.stamp-install: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,book,ray,audit]'
	touch $@

## data: Debian's Fashion-MNIST where apt is available and we are root (else pdlib downloads it)
data:
	@if [ -f $(FMNIST_DEB_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found in $(FMNIST_DEB_DIR)"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "apt-get unavailable or not root: pdlib will download Fashion-MNIST into data/ on first use"; \
	fi

## browser: Debian's headless Chromium for the offline book test (skipped where it cannot be installed)
browser:
	@if command -v chromium >/dev/null; then \
	  echo "chromium found"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "chromium unavailable: the browser test will be skipped"; \
	fi

## book: run every notebook with PROFILE (default laptop) through papermill, then build the HTML book
book: venv data
	$(PY) book/build.py --profile $(PROFILE)

## test: style (ruff format and check), then unit, property, loader and notebook (nbval, smoke
## profile) tests, plus the offline browser test
test: venv data browser
	$(VENV)/bin/ruff format --check pdlib tests book benchmarks
	$(VENV)/bin/ruff check pdlib tests book benchmarks
	$(PY) -m pytest $(PYTEST_ARGS)

## nbval-refs: re-execute the notebooks in the smoke profile and commit the result as nbval references
nbval-refs: venv data
	$(PY) book/build.py --profile smoke --refs-only

## bench: the speed and memory benchmarks (prints tables; not part of make test)
bench: venv data
	$(PY) benchmarks/knn_probe.py
	$(PY) benchmarks/prediction_depth.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/ensemble.py --profile smoke --sizes 4,16,64
	$(PY) benchmarks/gpu_cost.py  # meant for a GPU; on a CPU add --scale 0.02 --width 4

clean:
	rm -rf _build book/chapters/*.ipynb

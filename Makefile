# Two entry points for a fresh machine: `make run` (install + start the app on the offline market)
# and `make test` (install + run the whole test suite, browser tests included).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test install install-dev browser-deps bench results clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt

install-dev: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt

# Debian's Chromium for the browser tests (Playwright's own browser download is not reachable).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

run: install
	$(BIN)/python -m streamlit run app.py --server.port $(PORT)

test: install-dev browser-deps
	$(BIN)/python -m pytest

# the speed and memory benchmarks (a few minutes); `make results` is the real-data study (about 30 minutes)
bench: install-dev
	for b in bench/bench_*.py; do [ "$$b" = bench/bench_results.py ] && continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

results: install-dev
	$(BIN)/python bench/bench_results.py --out workspace/results/results.md
	$(BIN)/python bench/bench_results.py --preset chapter --models cnn1d,tcn,multiscale_cnn --epochs 10 \
	  --out workspace/results/results_chapter.md

clean:
	rm -rf $(VENV) .pytest_cache

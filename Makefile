# Developer and CI entry points. Everything runs in the venv that scripts/bootstrap.sh
# builds once (cached under $RH_DEV_CACHE, default ~/.cache/comfyui-runninghub-dev).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

RUN := bash scripts/run-in-venv.sh
# Targets that need only the tools' venv (ComfyUI 0.3.75) skip building the other hosts.
RUN_TOOLS := RH_HOSTS=$${RH_HOSTS:-0.3.75} bash scripts/run-in-venv.sh
PYTEST_ARGS ?=
RH_SIM_KEY ?= sim-local-key-0001
RH_SIM_PORT ?= 8765

.PHONY: setup test test-fast sim bench demo example-workflow

## setup: build (once) the test hosts (ComfyUI 0.3.75, 0.33.0, front end 1.58.1) and their venvs
setup:
	bash scripts/bootstrap.sh

## test: every test (unit, simulator, real-ComfyUI end-to-end, browser) on every host of
## the matrix (RH_HOSTS; scripts/test-matrix.sh)
test:
	$(RUN) bash scripts/test-matrix.sh $(PYTEST_ARGS)

## test-fast: everything but the end-to-end and browser tests
test-fast:
	$(RUN_TOOLS) python -m pytest -m "not e2e and not browser" $(PYTEST_ARGS)

## sim: the local RunningHub simulator on 127.0.0.1:$(RH_SIM_PORT), key $(RH_SIM_KEY)
sim:
	$(RUN_TOOLS) python -m rhsim --host 127.0.0.1 --port $(RH_SIM_PORT) --workflows tests/fixtures/workflows --key $(RH_SIM_KEY)

## demo: run the example graph headless in a local ComfyUI against the simulator (or RunningHub: see README)
demo:
	$(RUN_TOOLS) python scripts/demo.py

## example-workflow: rebuild example_workflows/, demo/*.api.json and the README picture in the real front end
example-workflow:
	$(RUN_TOOLS) python scripts/make_example_workflow.py

## bench: the benchmarks (chain_overhead, notice_latency, fanout, fetch_decode): BENCH lines, ~4 min; not part of test
bench:
	$(RUN_TOOLS) python bench/run_all.py $(BENCH_ARGS)

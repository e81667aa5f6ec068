# Redeliver — developer commands. `make help` lists them; `make test` is what CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
# checkov lives in its own venv: installed beside requirements-dev.txt, pip resolves it to 2.0.708.
CHECKOV_VENV ?= .checkov-venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# No telemetry. `sam build` finds the venv's python3.13.
export SAM_CLI_TELEMETRY := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)

# The offline targets need a region (moto takes any) when none is configured. Never `deploy`: it
# keeps the region the AWS CLI is configured with (AWS_REGION, the profile's), where the secret is.
OFFLINE_TARGETS := test fuzz checkov unit integration template e2e bench offline serve chaos policy-check sample-report
$(OFFLINE_TARGETS): export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help setup test fuzz checkov lock-checkov lint format typecheck unit integration template e2e build bench deploy lock lock-layer clean offline serve chaos policy-check sample-report

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The lock first, then this project over it (editable, no deps, with the lock's setuptools): that
# installs the `redeliver` command and makes redeliver and redeliver_cli importable.
$(STAMP): requirements-dev.txt pyproject.toml
	@test -x $(PY) || "$$(tools/python313)" -m venv $(VENV)
	$(PY) -m pip install --quiet pip==26.3  # pinned too: the installer is part of the supply chain
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

setup: $(STAMP) ## create .venv (Python 3.13) with every pinned tool and the `redeliver` command

# Hash-checked and without dependency resolution: exactly the lock, or pip stops.
$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || "$$(tools/python313)" -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements-checkov.txt
	@touch $@

test: setup lint typecheck checkov ## everything CI runs: lint, types, checkov, unit, integration, template, e2e tests
	$(PY) -m pytest

fuzz: setup ## the retry protocol's model test with fresh seeds, long (EXAMPLES=200; make test runs 20, fixed)
	REDELIVER_FUZZ_EXAMPLES=$${EXAMPLES:-200} $(PY) -m pytest tests/integration/test_protocol_model.py -p no:logging -q

checkov: $(CHECKOV_STAMP) ## checkov on template.yaml (offline): fails on any failed check; skips carry their reason
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet

lint: setup ## ruff lint and format check; lint-imports: the layers' one-way imports (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: setup ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup ## mypy --strict: the redeliver and redeliver_cli packages, each handler, the tools
	$(BIN)/mypy
	$(BIN)/mypy -p tools
	for handler in functions/*/app.py; do $(BIN)/mypy "$$handler"; done

unit: setup ## the pure domain tests (fast)
	$(PY) -m pytest tests/unit

integration: setup ## handlers against the template deployed into moto
	$(PY) -m pytest tests/integration

template: setup $(CHECKOV_STAMP) ## sam validate --lint, cfn-lint, checkov's skips, sam build (arm64 layer)
	$(PY) -m pytest tests/template

e2e: setup ## a seeded scenario through the offline stack
	$(PY) -m pytest tests/e2e

build: setup ## sam build into .aws-sam/
	$(BIN)/sam build

bench: setup ## benchmarks: cold start, calls per receipt, CPU, cost (ratios to a baseline)
	PYTHONPATH=layers/common:. $(PY) -m bench

# POLICY=file: the policy is checked (as the retry function will) before anything is built, and
# goes in as the RetryPolicy parameter (tools/policy_override.py says how sam reads it).
deploy: setup ## sam build, then sam deploy --guided (AWS credentials; POLICY=file: that retry policy, checked first)
	@override=""; \
	if [ -n "$(POLICY)" ]; then override=$$(PYTHONPATH=layers/common:. $(PY) -m tools.policy_override "$(POLICY)"); fi; \
	$(BIN)/sam build; \
	$(BIN)/sam deploy --guided $${override:+--parameter-overrides "$$override"}

# The layer's requirements.txt: its requirements.in pinned as the lock pins them, for the Lambda's
# platform, with the hash of every distribution of each pin (so pip verifies the x86_64 dev install
# and the aarch64 layer build alike, in --require-hashes mode). tests/supply_chain checks the drift.
LAYER_LOCK = uv pip compile layers/common/requirements.in --constraint requirements-dev.txt \
	--generate-hashes --python-version 3.13 --python-platform aarch64-manylinux_2_28 \
	--annotation-style line --custom-compile-command "make lock" \
	--output-file layers/common/requirements.txt --quiet

lock: ## re-pin requirements-dev.txt from requirements-dev.in in a fresh venv, then the layer's hashes
	rm -rf .lock-venv && "$$(tools/python313)" -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements-dev.in
	{ echo '# Generated from requirements-dev.in with `pip freeze` on Python 3.13; `make lock` regenerates it.'; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > requirements-dev.txt
	.lock-venv/bin/$(LAYER_LOCK)
	rm -rf .lock-venv

lock-layer: setup ## regenerate only the layer's hashed requirements.txt from the current lock
	$(BIN)/$(LAYER_LOCK)

lock-checkov: setup ## re-pin requirements-checkov.txt, with hashes, from requirements-checkov.in (uv, as the layer)
	$(BIN)/uv pip compile requirements-checkov.in --generate-hashes --python-version 3.13 \
	  --custom-compile-command "make lock-checkov" --output-file requirements-checkov.txt --quiet

clean: ## remove the venvs and build output
	rm -rf $(VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis

offline: setup ## the whole system offline, one scenario and its report (ARGS="--messages 500 --seed 3")
	PYTHONPATH=layers/common:. $(PY) -m tools.offline $(ARGS)

policy-check: setup ## validate a RetryPolicy document and show what it does (FILE=policy.json)
	@test -n "$(FILE)" || { echo "usage: make policy-check FILE=policy.json"; exit 2; }
	$(BIN)/redeliver policy check $(FILE) $(ARGS)

serve: setup ## the offline stack, kept running after its scenario (prints how to reach it)
	PYTHONPATH=layers/common:. $(PY) -m tools.offline --serve $(ARGS)

sample-report: setup ## regenerate docs/sample-report.txt and README's copy from a real make offline run (seed 7)
	PYTHONPATH=layers/common:. $(PY) -m tests.docs.sample_report $(ARGS)

chaos: setup ## the offline stack under faults (Twilio 429/5xx/timeouts, killed containers); exits 1 if an invariant breaks
	PYTHONPATH=layers/common:. $(PY) -m tools.chaos $(ARGS)

# tflock-reaper: one task runner for people and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := .venv
SAM_VENV := .venv-sam
SCAN_VENV := .venv-scan
PY       := $(VENV)/bin/python
# sam build needs the runtime's interpreter (python3.12) on PATH: the project venv provides it.
SAM      := SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam

.PHONY: help
# Colour only on a terminal, and never with NO_COLOR set (https://no-color.org), as the CLI does.
help: ## List the targets
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on='\033[36m'; off='\033[0m'; else on=''; off=''; fi; \
	grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	awk -F':.*?## ' -v on="$$on" -v off="$$off" '{printf "  %s%-14s%s %s\n", on, $$1, off, $$2}'

$(VENV)/.installed: layers/reaper/requirements.txt requirements-cli.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || "$$(scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r layers/reaper/requirements.txt \
		-r requirements-cli.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || "$$(scripts/find-python)" -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	@touch $@

$(SCAN_VENV)/.installed: requirements-scan.txt
	@test -x $(SCAN_VENV)/bin/python || "$$(scripts/find-python)" -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv with the pinned runtime and dev dependencies (editable install)

DYNALITE := tests/dynalite/node_modules/.installed
$(DYNALITE): tests/dynalite/package.json tests/dynalite/package-lock.json
	cd tests/dynalite && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: dynalite
dynalite: $(DYNALITE) ## Install dynalite (npm; a DynamoDB with the real key and item limits) for the tests

.PHONY: demo
demo: venv ## Local demo: moto server + real Terraform, a live and a stale lock, sweep dry-run then enforce
	PYTHONPATH=tests $(PY) scripts/demo.py

.PHONY: bench
bench: venv dynalite sam-build ## Benchmarks: sweep, stream, backtest, Slack app presses, cold start and package sizes, as ratios to baselines of the same run
	PYTHONPATH=tests $(PY) scripts/bench_stream.py --server
	PYTHONPATH=tests $(PY) scripts/bench_sweep.py
	PYTHONPATH=tests $(PY) scripts/bench_alert_delay.py
	PYTHONPATH=tests $(PY) scripts/bench_backtest.py
	PYTHONPATH=tests $(PY) scripts/bench_interactions.py
	$(PY) scripts/bench_coldstart.py

.PHONY: soak
soak: venv ## Race soak: Terraform-like workers vs enforce sweeps, bounded (SOAK_LIFETIMES=10000, SOAK_SECONDS=240, SOAK_INCREMENTAL=1)
	PYTHONPATH=tests $(PY) scripts/soak.py

.PHONY: lint
lint: venv ## ruff (format check + lint), mypy, and the package's import contracts (lint-imports)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: venv ## Format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: unit
unit: venv ## Unit tests only (pure, no network)
	$(VENV)/bin/pytest tests/unit

.PHONY: sam-validate
sam-validate: $(SAM_VENV)/.installed venv ## sam validate --lint (the stack, and the cross-account target role)
	$(SAM) validate --lint
	$(SAM) validate --lint -t cross-account/target-role.yaml

.PHONY: sam-build
# The layer and functions are shipped precompiled (unchecked-hash .pyc, by the venv's CPython, which is the runtime's
# minor version: check_build.py checks the tag): Lambda cannot write .pyc files, and compiles every module on each
# cold start without them.
sam-build: $(SAM_VENV)/.installed venv ## sam build, precompile, then check the layer holds arm64 wheels and .pyc for the runtime
	$(SAM) build
	$(PY) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build
	$(PY) scripts/check_build.py .aws-sam/build

# The environment `make deploy` uses ([default] or e.g. ENV=prod in samconfig.toml).
ENV ?= default

.PHONY: deploy
deploy: sam-build ## Deploy with the pinned SAM CLI: guided the first time an environment has no parameters, then as saved (ENV=prod for [prod])
	@if $(PY) scripts/samconfig_env.py --has-parameters "$(ENV)"; then \
		echo "sam deploy --config-env $(ENV) (parameters saved in samconfig.toml)"; \
		$(SAM) deploy --config-env "$(ENV)"; \
	else \
		echo "sam deploy --guided --config-env $(ENV): the first deploy of [$(ENV)] asks for the stack parameters and saves them"; \
		$(SAM) deploy --guided --config-env "$(ENV)"; \
	fi

# checkov --skip-download: it looks nothing up on the network (guidelines, severities, custom policies).
.PHONY: scan
scan: $(SCAN_VENV)/.installed ## Scan the templates: cfn-lint with the serverless rules, checkov (skips carry reasons)
	$(SCAN_VENV)/bin/cfn-lint --append-rules cfn_lint_serverless.rules -- template.yaml cross-account/target-role.yaml
	$(SCAN_VENV)/bin/checkov --file template.yaml --file cross-account/target-role.yaml --framework cloudformation \
		--skip-download --quiet --compact

.PHONY: test
test: venv dynalite lint scan sam-validate sam-build ## The whole suite: lint, template scans, SAM validate/build, unit, integration, e2e
	$(VENV)/bin/pytest

.PHONY: clean
clean: ## Remove build output and caches (keeps the virtualenvs)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .demo

# One entry point for every check. `make help` lists the targets.
.DEFAULT_GOAL := help
VENV ?= .venv
BIN := $(VENV)/bin

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

install: ## create .venv and install headwater with its dev tools and the moa extra
	scripts/bootstrap

kafka-up: ## start the local Kafka broker (idempotent)
	scripts/kafka-local up

kafka-down: ## stop the local Kafka broker
	scripts/kafka-local down

lint: ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: ## mypy --strict over the whole tree
	$(BIN)/mypy

test: ## unit and integration tests (starts the local broker if it is down)
	$(BIN)/pytest

check: lint typecheck test ## everything CI runs

openapi: ## write docs/openapi.json again from the admin API (a test compares the two)
	$(BIN)/python -m daemon.api.openapi

dashboard: ## write helm/headwater/dashboards/headwater.json again from daemon/dashboard.py (a test compares the two)
	$(BIN)/python -m daemon.dashboard

chart-schema: ## write the config part of helm/headwater/values.schema.json again from the daemon's settings (a test compares)
	$(BIN)/python -m tests.helm.values_schema

demo: ## the demo: a drifting stream through a live daemon
	$(BIN)/headwater demo

bench: ## end-to-end benchmark against a plain confluent-kafka loop
	$(BIN)/python -m bench.e2e_kafka

bench-candidates: ## serving latency with 0, 2, 4 candidates and a slow one (~4 min)
	$(BIN)/python -m bench.candidates

bench-copies: ## copying a grown River model: pickle round trip vs deepcopy (~30 s)
	$(BIN)/python -m bench.copies

bench-quality: ## the vote served against each member alone, on River's drifting streams (~8 min)
	$(BIN)/python -m bench.quality

bench-moa: ## MOA: per-event vs batched calls, ARF champion at 5,000/s vs CapyMOA alone, start-up (~6 min)
	$(BIN)/python -m bench.moa

.PHONY: help install kafka-up kafka-down lint typecheck test check openapi dashboard chart-schema demo bench bench-candidates bench-copies bench-moa bench-quality

# The README's two commands are `make demo` and `make test`; both set themselves up.
SHELL := /bin/bash
SCENARIO ?= good

.PHONY: setup test lint typecheck unit demo ui lock bench clean

setup:
	@bash scripts/bootstrap.sh

test: setup
	@bash scripts/test.sh

lint: setup
	@.venv/bin/ruff format --check . && .venv/bin/ruff check .

typecheck: setup
	@.venv/bin/mypy

demo: setup
	@bash scripts/demo.sh "$(SCENARIO)"

ui: setup
	@bash scripts/ui.sh

bench: setup
	@bash scripts/bench.sh

lock:
	@bash scripts/lock.sh

clean:
	rm -rf .airflow .airflow-test .demo .demo-ui

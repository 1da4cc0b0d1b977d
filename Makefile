# The two commands: `make demo` (main job) and `make test` (test suite). Both set up from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup setup-sb3 clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# constraints.txt pins torch to a CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# Stable-Baselines3 with OpenCV, for scripts/train_sb3_pong.py (not needed by the library or its tests)
setup-sb3: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,sb3]"

demo: $(STAMP)
	$(BIN)/poldist demo $(if $(GAME),--game $(GAME))

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

test: $(STAMP) lint
	$(BIN)/python -m pytest tests -q

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

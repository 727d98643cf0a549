# Every target creates the virtual environment it needs; nothing has to be installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint typecheck unit integration demo bench fuzz clean

FUZZ_SECONDS ?= 300

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check pipeline tests benchmarks

typecheck: venv
	$(BIN)/mypy pipeline

unit: venv
	$(BIN)/pytest tests/unit -q

integration: venv
	$(BIN)/pytest tests/integration -q

test: lint typecheck
	$(BIN)/pytest -q

# Coverage-guided fuzzing of the decoder and engine (atheris); prints executions and crashes.
fuzz: venv
	$(BIN)/python -m pip install --quiet atheris
	mkdir -p .fuzz-corpus && cp -n fuzz/corpus/* .fuzz-corpus/
	$(BIN)/python fuzz/fuzz_decoder.py -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		.fuzz-corpus 2>&1 | grep -v '^INFO: Instrumenting'

demo: venv
	$(BIN)/cdrveil demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

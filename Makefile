# tunix-rt: every target installs what it needs into .venv first, so each works in a new shell.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: smoke test unit data clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[torch,dev]'
	touch $(STAMP)

## smoke: the main job, the CPU smoke milestone end to end (bundle in submission_runs/smoke_vN/)
smoke: $(STAMP)
	$(BIN)/pytest acceptance --milestone smoke

## test: the fast unit tier, then the smoke milestone as an acceptance run
test: $(STAMP)
	$(BIN)/pytest tests -n auto -q
	$(BIN)/pytest acceptance --milestone smoke

unit: $(STAMP)
	$(BIN)/pytest tests -n auto -q

## data: regenerate the committed datasets and evalsets (byte-identical output)
data: $(STAMP)
	$(BIN)/python -m harness.datagen

clean-venv:
	rm -rf $(VENV)

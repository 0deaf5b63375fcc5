# tunix-rt: every target installs what it needs into .venv first, so each works in a new shell.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: smoke test unit browser data clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[torch,jax,mlflow,dev]'
	touch $(STAMP)

## smoke: the main job, the CPU smoke milestone end to end (bundle in submission_runs/smoke_vN/)
smoke: $(STAMP)
	$(BIN)/pytest acceptance --milestone smoke

## test: docs/tpu.md's install lines resolved against the pins (needs the package index), the
## unit tier (with the Kaggle notebooks, which rehearse m38 and m44-kaggle on user data on this
## CPU), the CPU milestones of both backends side by side (with the LoRA and Adafactor smoke
## variants), the M42 lock, and a rehearsal of every real milestone as shipped. The milestones run
## with one OpenMP thread per xdist worker: two workers of two threads each on two cores stall at
## every parallel region (benchmarks/README.md), LoRA's small operations most.
test: $(STAMP) browser
	$(BIN)/python -m tools.install_lines docs/tpu.md
	$(BIN)/pytest tests -n auto -q
	OMP_NUM_THREADS=1 $(BIN)/pytest acceptance -n 2 --milestone smoke --milestone smoke-jax --milestone smoke-lora --milestone smoke-adafactor
	$(BIN)/pytest acceptance --milestone m42
	$(BIN)/pytest acceptance --rehearse --milestone m44 --milestone m44-adafactor --milestone m44-kaggle --milestone m43 --milestone m38

unit: $(STAMP)
	$(BIN)/pytest tests -n auto -q

## browser: Debian's Chromium for the report's browser test, installed only where apt-get can (else it skips)
browser:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium) || \
		echo "chromium could not be installed: the report's browser test will skip"

## data: regenerate the committed datasets and evalsets (byte-identical output)
data: $(STAMP)
	$(BIN)/python -m tools.datagen

clean-venv:
	rm -rf $(VENV)

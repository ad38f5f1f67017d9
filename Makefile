# cmmixer: one-command setup, tests and reproduction. Every target installs what it needs first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
TORCH_PINS := torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0
NBDEV_PINS := nbdev==2.4.14 fastcore==1.14.5 execnb==0.1.18

.PHONY: results status setup export readme sync-check test test-slow test-fast reproduce bench bench-retrieval bench-pretrain synth-table table1 data-efficiency data-scale cpu-study table3 pretrain-report bench-gpu gpu-wheels bench-gpu-bare gpu-small gpu-small-bare table2 table4 table5 figures docs browser clean

setup: $(STAMP)

# torch first (from the machine's disk), then nbdev's pinned trio, then the package and its dev extras.
$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q $(NBDEV_PINS)
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip check
	touch $(STAMP)

export: setup
	$(BIN)/nbdev_export

# README.md is generated from nbs/index.ipynb (Quarto, which nbdev_readme needs, is not installable here).
readme: setup
	$(BIN)/python tools/readme.py nbs/index.ipynb README.md

# The exported package, README.md and the cleaned notebooks must equal what is committed.
sync-check: export readme
	$(BIN)/nbdev_clean
	@if [ -n "$$(git status --porcelain -- cmmixer README.md nbs)" ]; then \
	  echo "OUT OF SYNC: run 'make export readme' and 'nbdev_clean', then commit:"; \
	  git status --porcelain -- cmmixer README.md nbs; git diff --stat -- cmmixer README.md nbs; exit 1; fi
	@echo "cmmixer/, README.md and nbs/ are in sync"

# No root needed: the browser test is skipped, saying how to enable it, where Chromium is missing (`make browser`, root).
# CI installs the browser first and passes PYTEST_ARGS=--require-browser, so there it runs or fails.
# Two tiers (tests/conftest.py): `make test` runs the notebooks' tests and every end-to-end test not marked slow (each
# under a minute); `make test-slow` runs the slow ones (whole-table pipelines, multi-process runs, the chapters' other
# parameter refusals, JupyterLab in a browser). CI runs both. Two pytest workers (the tests are mostly single-threaded
# subprocesses); a file's tests stay on one worker so its shared fixtures are built once.
PYTEST_ARGS ?=
PYTEST := $(BIN)/pytest -q -rs -n 2 --dist loadfile --durations=10
test: setup sync-check
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(PYTEST) -m "not slow" $(PYTEST_ARGS) tests/

test-slow: setup
	$(PYTEST) -m slow $(PYTEST_ARGS) tests/

# Notebook tests only, without the sync check (handy while editing).
test-fast: setup
	$(BIN)/nbdev_test --n_workers 2

# The README's main job, end to end from nothing: the CutMix-Solo row of Table 1 at the CPU scale on the embedded
# SynthM2M (generate, prepare, pre-train, fine-tune from it and from a random encoder, the CCA and oracle references),
# printed beside the paper's row, ending with a one-line verdict in numbers. Its runs, records and tables go under
# runs/reproduce/ so the committed results/ stay as `make table1` made them; run again, it resumes or reuses them.
reproduce: setup
	$(CMMIXER) run table1 --scale cpu --variants solo:cutmix --seeds 1 --no_probes --no_full_res --verdict --runs runs/reproduce --results runs/reproduce

# Speed figures (not tests): needs the ffmpeg command line for the decode floor.
bench: setup
	command -v ffmpeg >/dev/null || (apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null)
	$(BIN)/python benchmarks/media.py

# SynthM2M's floor/ceiling table (chance, hand-crafted baseline, oracle) at the default size (make table1 measures
# the same references on the smoke scale's pools).
synth-table: setup
	$(CMMIXER) run synth-table

# Every table target is one command, `cmmixer run TABLE` (the tables layer, chapters 09): plan, run what has no record
# (two at a time on two cores, one process and one log each under runs/logs/), write results/. Resumable: finished runs
# are kept (run it in the background; run it again after an interruption).
CMMIXER := $(BIN)/cmmixer

# Every committed table and figure up to the current code (chapter 09i_results): runs only the targets whose files are
# not current (the manifest results/MANIFEST.csv names the code digest that made each file), restores current records
# committed under results/ instead of rerunning them, resumes after an interruption, and ends with a table of what it
# ran, reused and wrote. One log: runs/logs/results.log. In the background: `nohup make results >/dev/null 2>&1 &`.
# `make status` says what is current, stale or missing and what a rebuild would run, without running anything.
RESULTS_ARGS ?=
results: setup
	mkdir -p runs/logs
	set -o pipefail; $(CMMIXER) results $(RESULTS_ARGS) 2>&1 | tee -a runs/logs/results.log
status: setup
	$(CMMIXER) status

# Table 1 at the CPU scale: six variants (Solo/Duet x CutMix/Pixel Mixup/Mixup) x 3 seeds, the random-init runs, the
# frozen-encoder probes and the CCA/oracle references on the same pools, gathered with the paper's numbers.
table1: setup
	$(CMMIXER) run table1 --data synth --scale cpu --seeds 3 --verdict

# The data-efficiency figure: CutMix-Solo and random init fine-tuned on 10/25/50/100 % of the training pairs, 3 seeds.
data-efficiency: setup
	$(CMMIXER) run data-efficiency --data synth --scale cpu --seeds 3 --fractions 0.1,0.25,0.5,1

# Does mixing help? (chapters 07b_data_scale, 09k_data_scale): CutMix-Solo ('mixed'), the single-modality MAEs
# ('separate'), CutMix-Solo with the loss on every patch and a random encoder, pre-trained on 1,050 / 4,200 / 16,800
# videos, fine-tuned on 10 % and 25 % of the pairs and probed, 5 paired seeds; the paired differences with their
# 95 % intervals. Hours on 2 cores: run it in the background (`nohup make data-scale > runs/logs/data-scale.log 2>&1 &`);
# run again after an interruption, it keeps every finished cell and restores the records results/ holds.
data-scale: setup
	$(CMMIXER) run data-scale --scale cpu --seeds 5 --fractions 0.1,0.25

# The study that chose the CPU scale (val split only): results/cpu_scale_study.csv.
cpu-study: setup
	$(CMMIXER) run cpu-study --seeds 1

# Table 3 (params and FLOPs of the paper configuration, counted on the meta device in a second) beside the paper's.
table3: setup
	$(CMMIXER) run table3

# The CPU-scale pre-training report chapter 09e and the README show (loss curve, reconstruction, summary):
# pre-trains CutMix-Solo at the cpu scale (or reuses the run) and writes results/pretrain/synth_cpu_solo_cutmix_seed0/.
pretrain-report: setup
	$(CMMIXER) run pretrain-report --scale cpu

bench-retrieval: setup
	$(BIN)/python benchmarks/retrieval.py

bench-pretrain: setup
	$(BIN)/python benchmarks/pretrain.py

# The GPU benchmark (paper config, Solo and Duet, bf16, eager and compiled, the loader, the fine-tuning step):
# benchmarks/gpu_results.md, in about 3 minutes. On a machine set up with `make setup`:
bench-gpu: setup
	$(BIN)/python benchmarks/gpu.py
# On a bare GPU machine (its own python3 with torch, timm, numpy, pandas, safetensors; Python 3.12; no network):
# `make gpu-wheels` here downloads the two packages it lacks into .whl/, which travels with the checkout, and
# `make bench-gpu-bare` there installs them into /tmp/site and runs the benchmark.
GPU_WHEELS := av==18.1.0 fastcore==1.14.5
gpu-wheels:
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
WHEELS_IN := python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
bench-gpu-bare:
	$(WHEELS_IN)
	PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py $(GPU_ARGS)

# The GPU-small scale (one H100/H200, at most 8 minutes end to end): SynthM2M generated and prepared on every core,
# CutMix-Solo pre-trained (ViT-S-sized, 8 clips of 112 px, 10,000 videos, bf16), fine-tuned from it and from a random
# encoder, CCA (full resolution and on the model's inputs), the oracle and chance on the same pools; the record goes
# to runs/records/table1/, the tables to results/gpu_small_synth*.csv and .png, and it ends with a one-line verdict.
# Resumable (a finished run is kept). GPU_SMALL_SCALE=gpu-tiny is the same command at the size of its CPU test.
GPU_SMALL_SCALE ?= gpu-small
GPU_SMALL = run table1 --scale $(GPU_SMALL_SCALE) --variants solo:cutmix --seeds 1 --no_probes --verdict --inline
gpu-small: setup
	$(CMMIXER) $(GPU_SMALL) $(GPU_ARGS)
gpu-small-bare:
	$(WHEELS_IN)
	PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 -c 'import sys; from cmmixer.cli import main; sys.exit(main())' \
	  $(GPU_SMALL) $(GPU_ARGS)

# Table 2 at T2_SCALE (default cpu) on T2_DATA (synth: the M2M column; synth-yt8m: the YouTube-8M column): the same
# hyper-parameter budget for every trained row (its lr x 0.5, 1, 2 at seed 0, chosen on the val split), then every row
# at its choice for seeds 0-2: the four baselines, the single-modality MAEs, CMMixer-Solo/-Duet CutMix (Table 1 records
# of the same scale) and random init, with the CCA and oracle references of the same pools; gathered into
# results/table2_<data>_<scale>.csv, .png, _ratio.json and _tuning.csv. From nothing on the 2-core CPU machine: about
# 1 h 15 min for the M2M column (measured at commit 1a417fb, whose records give the same table).
T2_SCALE ?= cpu
T2_DATA ?= synth
table2: setup
	$(CMMIXER) run table2 --scale $(T2_SCALE) --data $(T2_DATA) --seeds 3

# Tables 4-5 (transfer) at TRANSFER_SCALE (default cpu), 3 seeds, from the pre-trained CutMix-Solo encoder (reused from
# make table1 when its runs exist), from the single-modality MAE of the task's view and from a random one, with chance and
# the hand-crafted baseline on the same items, on SynthM2M stand-ins in the real layouts; gathered into
# results/table4_synth_<scale>.csv, table5_synth_<scale>.csv and transfer_synth_<scale>.png.
TRANSFER_SCALE ?= cpu
table4: setup
	$(CMMIXER) run table4 --scale $(TRANSFER_SCALE) --seeds 3
table5: setup
	$(CMMIXER) run table5 --scale $(TRANSFER_SCALE) --seeds 3

# Figs. 2, 5-8 and Table 6 of the paper (chapters 07_analysis, 09f_figures) from the CPU-scale CutMix-Solo and
# random-init runs of Table 1 (the records in results/retrieval/ name their checkpoints under runs/: make table1
# first) and the CPU-scale study: results/analysis/.
figures: setup
	$(CMMIXER) run figures --seeds 3

# The documentation site: one page per chapter from its committed outputs, index first, into _docs/ (open
# _docs/index.html, or `python -m http.server -d _docs`). nbdev_docs needs Quarto, which is not installable here.
docs: setup
	$(BIN)/python tools/docs.py --out _docs

# Headless Chromium and its driver for the docs' browser test (tests/test_docs.py), from Debian's packages.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; fi

clean:
	rm -rf data _proc _docs

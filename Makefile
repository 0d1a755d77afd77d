# Every target runs in .venv, which the first `make` creates and fills from pyproject.toml (needs python3 only).
PY = .venv/bin/python
VENV_STAMP = .venv/.installed
FIGURES = fig1a fig1b fig2a fig2b

.PHONY: demo paper test figures curves bench gpu-check lint adapterhub-check

# Re-installs only when pyproject.toml is newer than the stamp; otherwise a no-op.
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet "pip>=21.3"  # editable installs from pyproject.toml need pip >= 21.3
	$(PY) -m pip install -e .
	touch $@

# Sigmoid attention's headline model (sigmoid gate, ReLU experts) on a small, well-replicated grid: the least-squares
# estimator beside the papers' gradient-descent protocol, about a minute on a CPU (results/sigmoid_attention/figures/demo).
demo: $(VENV_STAMP)
	$(PY) -m sigmoid_attention.synthetic --config sigmoid_attention/configs/demo.yaml
	$(PY) -m common.synthetic.figures paper=sigmoid_attention panels=[demo] minimax=false out_dir=results/sigmoid_attention/figures/demo

# Sigmoid attention: the paper-sized synthetic figures (hours on a CPU; see slurm/README.md for a cluster).
paper: $(VENV_STAMP)
	for f in $(FIGURES); do $(PY) -m sigmoid_attention.synthetic --config sigmoid_attention/configs/$${f}.yaml || exit 1; done
	$(PY) -m common.synthetic.figures paper=sigmoid_attention variant=paper

test: $(VENV_STAMP)
	$(PY) -m pytest -q --durations=10

# Every paper's synthetic figures and slopes tables, redrawn from saved results (nothing is fitted): by default
# the run records committed under records/<paper> (the measurements the READMEs quote); RECORDS=results for
# your own runs. Figures and tables go to results/<paper>/figures/paper (sigmoid attention and quadratic gating:
# the estimator beside the papers' protocol, the minimax envelope; sigmoid attention: the protocol's sensitivity
# table). Then RepLoRA's and HyRA's fine-tuning tables (your runs under results/, the CPU-scale text
# classification from RECORDS) in results/<paper>/tables; first the training curves (make curves).
PAPERS = $(shell $(PY) -c 'from common.experiment import PAPERS; print(*PAPERS)')  # every folder with a manifest
RECORDS ?= records
figures: $(VENV_STAMP) curves
	status=0; for p in $(PAPERS); do \
		$(PY) -m common.synthetic.figures paper=$$p variant=paper results_dir=$(RECORDS)/$$p out_dir=results/$$p/figures/paper || status=1; \
	done; \
	$(PY) -m sigmoid_attention.sensitivity run=false \
		results_dir=$(RECORDS)/sigmoid_attention out_dir=results/sigmoid_attention/figures/paper || status=1; \
	for p in replora hyra; do \
		$(PY) -m $$p.tables results_dir=results text_results_dir=$(RECORDS)/replora out_dir=results/$$p/tables || status=1; \
	done; exit $$status

# Training curves of the CPU-scale reproductions (quadratic_gating/README.md, replora/README.md), from their records.
curves: $(VENV_STAMP)
	$(PY) -m common.curves "runs=[$(RECORDS)/quadratic_gating/timeseries/*]" out=results/quadratic_gating/curves/timeseries_etth1
	$(PY) -m common.curves "runs=[$(RECORDS)/quadratic_gating/vision/*]" out=results/quadratic_gating/curves/vision_fashion_mnist smooth=5
	$(PY) -m common.curves "runs=[$(RECORDS)/quadratic_gating/language/*]" out=results/quadratic_gating/curves/language_shakespeare smooth=5
	$(PY) -m common.curves "runs=[$(RECORDS)/replora/text_classification/*]" "where={fraction: 1.0}" label=[method] \
		best=val_accuracy out=results/replora/curves/text_minilm

bench: $(VENV_STAMP)
	$(PY) -m benchmarks.sigmoid_attention_grid
	$(PY) -m benchmarks.synthetic_grids results_root=$(RECORDS)
	$(PY) -m benchmarks.synthetic_fitter
	$(PY) -m benchmarks.moe_attention

# On a machine with a CUDA GPU, the checks only it can run (about 10 minutes): every test marked gpu, then the
# fitter benchmark with its CPU-against-GPU columns (results/benchmarks/synthetic_fitter.json).
gpu-check: $(VENV_STAMP)
	$(PY) -m pytest -m gpu -q
	$(PY) -m benchmarks.synthetic_fitter loop=false gpu=true
	$(PY) -m benchmarks.ddp_throughput

# Our bottleneck adapter against AdapterHub's library (tests/adapters/test_adapterhub.py). The library pins
# transformers 4.57 and huggingface_hub < 1.0, so it lives in a side environment that shadows those two (and their
# few extra dependencies) and reads everything else, torch included, from .venv.
ADAPTERHUB_VENV = .venv-adapterhub
ADAPTERHUB_PINS = adapters==1.3.0 transformers==4.57.6 huggingface_hub==0.36.2 tokenizers==0.22.2 \
	requests==2.34.2 urllib3==2.8.0 certifi==2026.10.19.post1 charset-normalizer==3.5.3
$(ADAPTERHUB_VENV)/.installed: $(VENV_STAMP)
	test -x $(ADAPTERHUB_VENV)/bin/python || python3 -m venv $(ADAPTERHUB_VENV)
	$(PY) -c "import sysconfig, os; print(sysconfig.get_paths()['purelib']); print(os.getcwd())" > \
		"$$($(ADAPTERHUB_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/moe-lens-main.pth"
	$(ADAPTERHUB_VENV)/bin/pip install --quiet --no-deps $(ADAPTERHUB_PINS)
	touch $@

adapterhub-check: $(ADAPTERHUB_VENV)/.installed
	$(ADAPTERHUB_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/adapters/test_adapterhub.py

lint: $(VENV_STAMP)
	@test -x .venv/bin/ruff || { echo "ruff is not in .venv: run  .venv/bin/pip install -e '.[dev]'" >&2; exit 1; }
	.venv/bin/ruff check .

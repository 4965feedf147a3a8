# The two commands a newcomer needs: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LAB_ARGS ?=
NB ?= notebooks/*.ipynb
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# Notebook runs must draw inline plots; an inherited MPLBACKEND=Agg would drop them.
NBENV := env -u MPLBACKEND PYTHONHASHSEED=0 LESSON_OFFLINE_GUARD=1

.PHONY: lab test unit nbval nbval-perturbed fragility notebooks notebook bench lint doctor clean-venv

# JupyterLab reads every file in this folder of the environment: the course's settings (no news
# toast, no update check on a fresh profile) apply to `make lab` and to .venv/bin/jupyter alike.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.d/lesson-course.json

# (Re)install only when pyproject.toml or the Lab settings are newer than the last install.
$(STAMP): pyproject.toml jupyter/lab-settings.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	install -D -m 644 jupyter/lab-settings.json $(LAB_SETTINGS)
	touch $(STAMP)

# Jupyter refuses to run as root without --allow-root (containers, CI machines).
ROOT_ARG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_ARG) $(LAB_ARGS)

test: unit nbval nbval-perturbed

unit: $(STAMP)
	LESSON_OFFLINE_GUARD=1 $(BIN)/python -m pytest tests lesson_utils --doctest-modules -q

# nbval compares the stored outputs of `# NBVAL_CHECK_OUTPUT` cells and fails on any error (a claim
# assert). It runs twice against the same stored outputs: natively, and with other float kernels
# (this CPU computing like another one), so a checked output that depends on the CPU fails here.
NBVAL := $(BIN)/python -m pytest --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with .ci/nbval_sanitize.cfg --nbval-cell-timeout=300 -p no:cacheprovider -q
PERTURBED_FLOATS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE

nbval: $(STAMP)
	$(NBENV) $(NBVAL) $(NOTEBOOKS)

nbval-perturbed: $(STAMP)
	$(NBENV) $(PERTURBED_FLOATS) $(NBVAL) $(NOTEBOOKS)

# For authors: every notebook under seven float perturbations and four more seeds; each claim
# assert with its margin and spread (benchmarks/results/fragility.md). About an hour for all.
fragility: $(STAMP)
	$(NBENV) $(BIN)/python -m lesson_utils.portability report $(NB)

# Re-execute notebooks in place so stored outputs are real: `make notebooks`, or one with
# `make notebook NB=notebooks/01_models.ipynb`.
notebooks: $(STAMP)
	$(NBENV) $(BIN)/python -m lesson_utils.notebooks execute $(NOTEBOOKS)

notebook: $(STAMP)
	$(NBENV) $(BIN)/python -m lesson_utils.notebooks execute $(NB)

bench: $(STAMP)
	$(NBENV) $(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check lesson_utils tests benchmarks

doctor: $(STAMP)
	$(BIN)/python -m lesson_utils doctor

clean-venv:
	rm -rf $(VENV)

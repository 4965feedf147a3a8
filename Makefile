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

.PHONY: lab test unit nbval notebooks notebook bench lint doctor clean-venv

# (Re)install only when pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Jupyter refuses to run as root without --allow-root (containers, CI machines).
ROOT_ARG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_ARG) $(LAB_ARGS)

test: unit nbval

unit: $(STAMP)
	LESSON_OFFLINE_GUARD=1 $(BIN)/python -m pytest tests lesson_utils --doctest-modules -q

nbval: $(STAMP)
	$(NBENV) $(BIN)/python -m pytest --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with .ci/nbval_sanitize.cfg --nbval-cell-timeout=300 \
	  -p no:cacheprovider -q $(NOTEBOOKS)

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

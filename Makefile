# The three commands a user needs; README.md shows them.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
PROFILE ?= results
DATA ?=

.PHONY: setup test book clean results-runs

setup:
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -r requirements.txt

test:
	$(PYTHON) -m pytest -q

book:
	$(VENV)/bin/mcef book --profile $(PROFILE) $(if $(DATA),--data $(DATA))

clean:
	rm -rf _build book/_generated

# Train what the book of results reads and its committed store lacks (hours on a CPU; resumable: rerun to go on),
# then commit book/results/paper. `make book` itself never trains into that store.
results-runs:
	MCEF_BOOK_TRAIN_MISSING=1 $(VENV)/bin/mcef book --profile results

# The three commands a user needs; README.md shows them.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
PROFILE ?= smoke

.PHONY: setup test book clean

setup:
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -r requirements.txt

test:
	$(PYTHON) -m pytest -q

book:
	$(VENV)/bin/mcef book --profile $(PROFILE)

clean:
	rm -rf _build book/_generated

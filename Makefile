PY ?= python

.PHONY: lint test bench

lint:
	ruff check . && ruff format --check .

test:
	$(PY) -m pytest

bench:
	$(PY) benchmarks/geodesic.py && $(PY) benchmarks/score.py && $(PY) benchmarks/report.py

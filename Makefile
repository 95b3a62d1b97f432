# make demo   set everything up, then run the assistant on the example home
# make test   set everything up, then run the tests
# make bench  measure the pipeline
.PHONY: setup setup-test demo test bench

setup:
	./setup.sh

setup-test:
	./setup.sh --test

demo: setup
	.venv/bin/assistant demo

test: setup-test
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/assistant bench

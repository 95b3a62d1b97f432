# make demo   set everything up, then run the assistant on the example home
# make test   set everything up, then run the tests
# make bench  measure the pipeline
# make appliance-test  boot the installed app in an arm64 Debian container (root; slow on a cold cache)
.PHONY: setup setup-test demo test bench appliance-test

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

appliance-test: setup-test
	./.ci/appliance-setup.sh
	./.ci/appliance.sh

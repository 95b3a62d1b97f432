# make demo   set everything up, then run the assistant on the example home
# make test   set everything up, then run the tests
# make test-fast  the same, only the tests that need no models, broker or synthesized speech (under a minute)
# make test-room  the box in a room through the sound server: listening through its own voice (minutes)
# make test-ha  the box with a real Home Assistant Core 2024.3.3, installed into .venv-ha (minutes the first time)
# make bench  measure the pipeline
# make bench-ha-chain  Home Assistant's voice chain beside this one, in .venv-wyoming (made the first time)
# make appliance-test  boot the installed app in an arm64 Debian container (root; slow on a cold cache)
.PHONY: setup setup-test demo test test-fast test-room test-ha bench bench-ha-chain appliance-test

setup:
	./setup.sh

setup-test:
	./setup.sh --test

demo: setup
	.venv/bin/assistant demo

test: setup-test
	.venv/bin/python -m pytest -q -m "not room" -n 2 --dist loadfile

test-fast: setup-test
	.venv/bin/python -m pytest -q -m "not slow"

test-room: setup-test
	.venv/bin/python -m pytest -q -s -m room tests/test_echo_cancel.py

test-ha: setup-test
	./tests/ha/run.sh

bench: setup
	.venv/bin/assistant bench

bench-ha-chain: setup
	./tools/wyoming-venv.sh .venv-wyoming
	.venv/bin/assistant bench --beside-home-assistant --wyoming-venv .venv-wyoming

appliance-test: setup-test
	./.ci/appliance-setup.sh
	./.ci/appliance.sh

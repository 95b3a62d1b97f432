"""The command line as a user types it: ask, say, transcribe, models list."""

import subprocess
import sys

import pytest
from conftest import EXAMPLE

from assistant.broker import free_port


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=timeout)


def test_ask_switches_the_light_and_prints_the_reply(broker, spy):
    done = cli("ask", "--config", str(EXAMPLE), "--mqtt", broker.url, "turn on the kitchen light")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "Turned on the kitchen light."
    spy.settle()
    assert spy.on("zigbee2mqtt/kitchen_light/set") == [{"state": "ON"}]


def test_ask_about_an_unknown_device(broker, spy):
    done = cli("ask", "--mqtt", broker.url, "turn on the garage heater")
    assert done.returncode == 1
    assert "I don't know any device called garage heater." in done.stdout
    spy.settle()
    assert spy.device_messages() == []


def test_ask_with_no_broker_answers_and_exits(tmp_path):
    done = cli("ask", "--mqtt", f"mqtt://127.0.0.1:{free_port()}", "turn on the kitchen light")
    assert done.returncode == 1
    assert "could not reach the home's message broker" in done.stdout
    assert "not connected to mqtt://127.0.0.1" in done.stderr  # the outage is reported, not hidden
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_say_then_transcribe(tmp_path):
    wav = tmp_path / "hello.wav"
    assert cli("say", "--output", str(wav), "Turn off the bedroom light.").returncode == 0
    done = cli("transcribe", str(wav))
    assert done.returncode == 0
    assert "bedroom light" in done.stdout.lower()


def test_models_list_shows_the_non_commercial_wake_word_licence():
    done = cli("models", "list")
    assert done.returncode == 0
    line = next(ln for ln in done.stdout.splitlines() if "hey_jarvis" in ln)
    assert "NON-COMMERCIAL" in line

"""`assistant run` with a config that does not load: one line on stderr, the key said aloud, the error on
the broker, exit code 2 (systemd does not restart it) and never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.audio.wav import load_pcm16k
from assistant.bad_config import spoken
from assistant.broker import free_port
from assistant.config import ConfigError
from assistant.engines.asr_faster_whisper import FasterWhisper
from assistant.mqtt_recorder import MqttRecorder

BAD = '[mqtt]\nurl = "http://broker"\n'


def run(config, *args):
    return subprocess.run([sys.executable, "-m", "assistant", "run", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def box(tmp_path, last_good: str):
    """A live config that does not load, and the last good one the boot import kept beside it."""
    live = tmp_path / "assistant.toml"
    live.write_text(BAD)
    (tmp_path / "assistant.toml.bak").write_text(last_good)
    return live


@pytest.mark.parametrize("message, sentence", [
    ("f: 'mqtt.url' should look like mqtt://host:1883", "My configuration has an error in the key mqtt dot url."),
    ("f: missing key 'device[1].name'", "My configuration has an error in the key device 1 dot name."),
    ("f: 'mqtt.ca_file': no such file", "My configuration has an error in the key mqtt dot ca file."),
    ("f: not valid TOML: Expected '=' after a key in a key/value pair (at line 3, column 5)",
     "My configuration file has an error on line 3."),
    ("f: not a UTF-8 text file", "My configuration file cannot be read."),
])
def test_the_spoken_sentence_names_the_key(message, sentence):
    assert spoken(ConfigError(message)) == sentence


def test_run_says_the_key_into_the_output_and_exits_2(tmp_path, store):
    live = box(tmp_path, f'[mqtt]\nurl = "mqtt://127.0.0.1:{free_port()}"\n')  # no broker there
    wav = tmp_path / "said.wav"
    done = run(live, "--output", str(wav), "--models-dir", str(store.root))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {live}: 'mqtt.url' should look like mqtt://host:1883, "
                                        f"got 'http://broker'"]
    heard = FasterWhisper(store, "whisper-tiny.en", 2, 1).transcribe(load_pcm16k(wav), None).lower()
    # tiny.en writes the spelled key variously ("mqtt.url", "mqt.rl"): the sentence and the key's end
    assert "configuration has an error" in heard and "rl" in heard.split("key", 1)[-1], heard


def test_run_publishes_the_error_where_the_last_good_config_pointed(tmp_path, broker):
    live = box(tmp_path, f'site = "hall"\n[mqtt]\nurl = "{broker.url}"\n')
    done = run(live, "--output", str(tmp_path / "said.wav"), "--models-dir", str(tmp_path / "no-models"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0].startswith("error: ") and "'mqtt.url'" in done.stderr
    assert "could not say it" in done.stderr  # no voice model here: printed, not spoken
    spy = MqttRecorder(broker.url, ["assistant/hall/#"])  # subscribed afterwards: only retained messages arrive
    spy.settle()
    spy.close()
    retained = dict(spy.messages)
    assert retained["assistant/hall/state"] == "error"
    assert "'mqtt.url' should look like mqtt://host:1883" in retained["assistant/hall/error"]


def test_run_without_a_speaker_still_exits_cleanly(tmp_path, store):
    live = box(tmp_path, f'[mqtt]\nurl = "mqtt://127.0.0.1:{free_port()}"\n[audio]\noutput_device = "no such card"\n')
    done = run(live, "--models-dir", str(store.root))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0].startswith("error: ") and "could not say it" in done.stderr

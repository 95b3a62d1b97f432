"""A broken config is a one-line error that names the file and the key."""

import subprocess
import sys

import pytest
from conftest import EXAMPLE, home_file

from assistant import config


def error(tmp_path, text) -> str:
    with pytest.raises(config.ConfigError) as e:
        config.load(home_file(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg and "home.toml" in msg
    return msg


def test_example_loads_with_defaults():
    cfg = config.load(EXAMPLE)
    assert [d.id for d in cfg.device] == ["kitchen_light", "living_room_lamp", "bedroom_light"]
    assert cfg.wake.models == ["hey_jarvis"] and cfg.listen.silence_ms == 600


@pytest.mark.parametrize("text, words", [
    ("site = 'x'\n[wake\n", ["not valid TOML"]),
    ("sight = 'x'\n", ["unknown key 'sight'"]),
    ("[wake]\nthreshhold = 0.5\n", ["unknown key 'wake.threshhold'", "threshold"]),
    ("[wake]\nthreshold = 'high'\n", ["'wake.threshold' should be a number", "'high'"]),
    ("[listen]\nsilence_ms = true\n", ["'listen.silence_ms' should be an integer"]),
    ("[[device]]\nname = 'lamp'\ndialect = 'hue'\n", ["'device[0].dialect'", "zigbee2mqtt"]),
    ("[[device]]\nname = 'lamp'\ndialect = 'ha_json'\n", ["'device[0].command_topic' is required"]),
    ("[[device]]\narea = 'x'\n", ["missing key 'device[0].name'"]),
    ("[[device]]\nname = 'lamp'\n[[device]]\nname = 'Lamp'\n", ["'device[1]'", "already used"]),
    ("[mqtt]\nurl = 'localhost:1883'\n", ["'mqtt.url'"]),
    ("wake = 3\n", ["wake"]),
    ("[audio]\necho_cancel = 'yes'\n", ["'audio.echo_cancel' should be true or false"]),
    ("[audio]\necho_delay_ms = 900\n", ["'audio.echo_delay_ms'", "0 to 500"]),
    ("[audio]\necho_cancel = false\nnoise_suppression = true\n", ["'audio.noise_suppression'", "echo_cancel"]),
    ("[asr]\nfirst_window_s = 0.5\n", ["'asr.first_window_s'", "0 (off) or from 1 to 30"]),
])
def test_errors_name_the_key(tmp_path, text, words):
    msg = error(tmp_path, text)
    for w in words:
        assert w in msg


def test_the_box_area_must_be_one_of_the_homes_areas(tmp_path):
    msg = error(tmp_path, 'area = "garage"\n' + EXAMPLE.read_text())
    assert "'area'" in msg and "'garage'" in msg and "bedroom, kitchen, living room" in msg
    msg = error(tmp_path, 'area = "kitchen"\n')  # no device has an area at all
    assert "'area'" in msg and "'kitchen'" in msg and "none has one" in msg


def test_the_box_area_is_spelled_as_the_registry_spells_areas(tmp_path):
    assert config.load(home_file(tmp_path, 'area = " Living_Room "\n' + EXAMPLE.read_text())).area == "living room"
    assert config.load(EXAMPLE).area == ""  # none: the box is in no room in particular
    # a discovered device's area, named ahead by [[customize]]
    cfg = config.load(home_file(tmp_path, 'area = "hall"\n[[customize]]\nmatch = "hall ceiling"\narea = "hall"\n'))
    assert cfg.area == "hall"


def test_cli_reports_a_broken_config_in_one_line(tmp_path):
    p = home_file(tmp_path, "[mqtt]\nport = 1883\n")
    done = subprocess.run([sys.executable, "-m", "assistant", "ask", "--config", str(p), "hello"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {p}: unknown key 'mqtt.port' (known here: "
                                                f"ca_file, cert_file, client_id, command_timeout_s, hermes, key_file, max_payload_kb, "
                                                f"password, topic_prefix, url, username)"]


def test_missing_config_file(tmp_path):
    with pytest.raises(config.ConfigError, match="no such config file"):
        config.load(tmp_path / "nope.toml")

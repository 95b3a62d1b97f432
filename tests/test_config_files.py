"""Config files as people save them (Windows editors add a byte-order mark), and the key an error names."""

from __future__ import annotations

import pytest

from assistant import config
from assistant.startup import load_config

BOM = "\ufeff"


def write_bom(path, text: str):
    path.write_bytes((BOM + text).encode("utf-8"))
    return path


def test_a_config_saved_with_a_bom_loads(tmp_path):
    cfg = config.load(write_bom(tmp_path / "home.toml", 'site = "kitchen"\n'))
    assert cfg.site == "kitchen"


@pytest.mark.parametrize("name, sentences", [
    ("sentences.ini", "[GetTime]\nwhat time is it\n"),
    ("sentences.yaml", "intents:\n  GetTime:\n    data:\n      - sentences: [\"what time is it\"]\n"),
])
def test_sentences_files_saved_with_a_bom_load(tmp_path, name, sentences):
    write_bom(tmp_path / name, sentences)
    home = write_bom(tmp_path / "home.toml", f'sentences_file = "{name}"\n')
    assert load_config(home).sentences_file == name


@pytest.mark.parametrize("text, key", [
    ('[mqtt]\nurl = "http://broker"\n', "mqtt.url"),
    ("[wake]\nthreshhold = 0.5\n", "wake.threshhold"),
    ("[[device]]\narea = 'x'\n", "device[0].name"),
    ("[[device]]\nname = 'lamp'\ndialect = 'hue'\n", "device[0].dialect"),
    ("site = 'x'\n[wake\n", None),  # the file as a whole is not TOML
])
def test_a_config_error_carries_the_key_it_names(tmp_path, text, key):
    with pytest.raises(config.ConfigError) as e:
        config.load(write_bom(tmp_path / "home.toml", text))
    assert e.value.key == key

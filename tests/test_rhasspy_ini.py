"""A Rhasspy sentences.ini as custom intents: its syntax converted to templates and slot lists, typed
sentences matched to intents and slots, and mistakes in the file reported with the file's name."""

from __future__ import annotations

import pytest
from conftest import home_config

from assistant import config
from assistant.config import ConfigError
from assistant.understand.custom import CustomIntents, from_config

INI = """
# comments are skipped
[SetTimer]
minutes = (1..60){minutes}
set a timer for <minutes> minutes
(start | begin) a <minutes> minute timer

[ChangeLight]
light = ((living room lamp | lamp):living_room_lamp | kitchen light){name}
brightness = (dim:25 | bright:100){level}
turn (on | off){state} [the] <light>
make [the] <light> <brightness>
set [the] <light> to ($color){color}

[ChangeLightColor]
paint [the] <ChangeLight.light> $color{color}
make it (cozy){color:warm_white}

[GetTime]
what time is it
what's the time:
"""

HOME = """
sentences_file = "sentences.ini"

[[slot]]
name = "color"
values = ["red", "blue"]
synonyms = { crimson = "red" }
"""


def load(tmp_path, ini: str = INI, home: str = HOME) -> config.Config:
    (tmp_path / "sentences.ini").write_text(ini)
    return home_config(tmp_path, base=home)


@pytest.mark.parametrize("text, name, slots", [
    ("set a timer for 5 minutes", "SetTimer", {"minutes": 5}),
    ("please begin a ten minute timer", "SetTimer", {"minutes": 10}),
    ("turn on the kitchen light", "ChangeLight", {"state": "on", "name": "kitchen light"}),
    ("turn off lamp", "ChangeLight", {"state": "off", "name": "living_room_lamp"}),  # substitution
    ("make the living room lamp dim", "ChangeLight", {"name": "living_room_lamp", "level": "25"}),
    ("set the kitchen light to crimson", "ChangeLight", {"name": "kitchen light", "color": "red"}),  # $list synonym
    ("paint the lamp blue", "ChangeLightColor", {"name": "living_room_lamp", "color": "blue"}),  # <Intent.rule>
    ("make it cozy", "ChangeLightColor", {"color": "warm_white"}),  # {tag:value}
    ("what time is it", "GetTime", {}),
    ("what's the time", "GetTime", {}),
])
def test_typed_sentences_give_intents_and_slots(tmp_path, text, name, slots):
    custom = CustomIntents(from_config(load(tmp_path)))
    intent = custom.understand(text)
    assert intent is not None and (intent.name, intent.slots) == (name, slots)


@pytest.mark.parametrize("text", ["set a timer for 90 minutes", "turn on the garage light", "paint the lamp green",
                                  "make the lamp bright red", "time"])
def test_what_the_file_does_not_say_is_not_matched(tmp_path, text):
    assert CustomIntents(from_config(load(tmp_path))).understand(text) is None


@pytest.mark.parametrize("ini, message", [
    ("[A]\nturn on <lamp>\n", "the rule <lamp> is not defined"),
    ("[A]\nx = <x>\nsay <x>\n", "refers to itself"),
    ("[A]\nset it to $size{size}\n", "the slot list $size is not defined"),
    ("[A]\nturn (on | off{state}\n", "expected )"),
    ("[A]\ncount to 1..10\n", "needs a {tag}"),
    ("[Bad-Name]\nhello\n", "the name should be letters"),
    ("turn it on\n", "not a valid Rhasspy sentences.ini"),
])
def test_mistakes_in_the_file_name_the_file_and_the_problem(tmp_path, ini, message):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, ini)
    assert message in str(e.value) and str(tmp_path / "sentences.ini") in str(e.value)

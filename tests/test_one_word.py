"""One word is no command: "pause", "next", "office", "kitchen" said alone after the wake word, and a
device's name alone, switch nothing in a home with an office lamp and a kitchen light, through the whole
pipeline (templates, close listening, the LLM) on spoken audio and a real broker."""

from __future__ import annotations

import pytest
from conftest import home_config, run
from test_voice_e2e import command

from assistant.audio.io import FileSource

OFFICE = '\n[[device]]\nname = "office lamp"\narea = "office"\nfriendly_name = "office_lamp"\n'


# Each word in one voice, the voices taking turns: a Piper and an espeak-ng voice both say a name alone.
@pytest.mark.parametrize("word, voice", [("Pause.", "piper"), ("Next.", "en-us"), ("Office.", "piper"),
                                         ("Kitchen.", "en-us"), ("Kitchen light.", "piper"),
                                         ("Office lamp.", "en-us")])
def test_one_word_switches_nothing(tmp_path, store, make_assistant, spy, word, voice):
    a, _, events = make_assistant(home_config(tmp_path, OFFICE))
    run(a.run(FileSource(pcm=command(store, word, voice=voice))))
    spy.settle()
    assert spy.device_messages() == [], [e.data for e in events if e.kind in ("transcript", "intent", "llm")]


def test_with_the_action_said_the_office_lamp_is_switched(tmp_path, store, make_assistant, spy):
    a, _, _ = make_assistant(home_config(tmp_path, OFFICE))
    run(a.run(FileSource(pcm=command(store, "Turn on the office lamp."))))
    spy.settle()
    assert spy.on("zigbee2mqtt/office_lamp/set") == [{"state": "ON"}]

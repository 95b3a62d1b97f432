"""Recorded speech from the Rhasspy project's test set: the wake-word recording made for "hey mycroft"
switches the living room lamp with the hey_mycroft model."""

from __future__ import annotations

from conftest import DEVSET, EXAMPLE, needs_devset, run

from assistant import config
from assistant.audio.io import FileSource

pytestmark = needs_devset
PRECISE = DEVSET / "rhasspy-en" / "wake" / "precise_turn_on_the_living_room_lamp.wav"


def test_hey_mycroft_recording_turns_on_the_living_room_lamp(store, engines, make_assistant, spy):
    from assistant.engines.wake_openwakeword import OpenWakeWord

    cfg = config.load(EXAMPLE)
    cfg.wake.models = ["hey_mycroft"]
    mycroft = type(engines)(OpenWakeWord(store, cfg.wake.entries()), engines.vad, engines.asr, engines.tts)
    a, _, events = make_assistant(cfg, with_engines=mycroft)
    run(a.run(FileSource(PRECISE)))
    spy.settle()
    assert [e.kind for e in events].count("wake") == 1
    assert spy.device_messages() == [("home/living_room_lamp/set", '{"state": "ON"}')]

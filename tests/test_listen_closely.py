"""Listening closely: the beam's readings, the decoder's check of the home's nearest sentences on the
audio, the on/off guard, and speech that fits no command. Real Whisper on real synthesized speech."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run

from assistant.audio.io import FileSource
from assistant.audio.mix import add_noise
from assistant.samples import piper, utterance
from assistant.understand.rescore import GAP, as_spoken, flipped, meaning

KITCHEN = "zigbee2mqtt/kitchen_light/set"


def spoken(store, text: str, snr: float | None = None, seed: int = 0) -> np.ndarray:
    speech = utterance(0.4, piper(store, text), 0.4)
    if snr is None:
        return speech.astype(np.int16)
    noise = np.random.default_rng(seed).normal(0, 1, len(speech))
    return add_noise(speech, noise, snr).astype(np.int16)


def test_sentences_are_written_as_whisper_writes_them():
    assert as_spoken("set the kitchen light to 30 percent") == "Set the kitchen light to 30%."
    assert flipped("turn on the lights in the kitchen") == "turn off the lights in the kitchen"
    assert flipped("switch off the sofa lamp") == "switch on the sofa lamp"
    assert flipped("set the sofa lamp to red") is None


@pytest.mark.parametrize("said, other", [("on", "off"), ("off", "on")])
def test_the_decoder_prefers_the_on_off_word_that_was_said(engines, store, said, other):
    asr = engines.asr
    encoded = asr.encode(spoken(store, f"Turn {said} the kitchen light.", snr=12))
    readings = asr.hypotheses(encoded, None, 4)
    assert len(readings) >= 2 and len({r.text for r in readings}) == len(readings)
    assert readings[0].logprob >= max(r.logprob for r in readings) - 0.05  # the beam's best comes first
    fit_said, fit_other = asr.score(encoded, [f"Turn {said} the kitchen light.", f"Turn {other} the kitchen light."])
    assert fit_said > fit_other + 0.3  # a clear lead: acted on without asking back


def test_an_exact_on_off_is_checked_against_its_opposite_and_acted_on(make_assistant, spy, store):
    a, _, _ = make_assistant()
    heard = a._hear(spoken(store, "Turn off the lights in the kitchen.", snr=12))
    assert heard.checked is not None and set(heard.checked) == {
        "turn off the lights in the kitchen", "turn on the lights in the kitchen"}
    assert heard.intent.name == "HassTurnOff" and heard.intent.confidence >= a.cfg.understand.act_threshold
    run(a.run(FileSource(pcm=spoken(store, "Turn off the lights in the kitchen.", snr=12)), awake=True))
    spy.settle()
    assert spy.device_messages() == [(KITCHEN, '{"state": "OFF"}')]


def test_speech_no_command_fits_is_left_alone(make_assistant, spy, store):
    a, _, _ = make_assistant()
    heard = a._hear(spoken(store, "The kids are asleep upstairs, be quiet.", snr=12))
    assert heard.checked, "the nearest commands were checked on the audio"
    assert heard.readings[0].logprob - max(heard.checked.values()) > GAP
    assert heard.intent is None
    run(a.run(FileSource(pcm=spoken(store, "The kids are asleep upstairs, be quiet.", snr=12)), awake=True))
    spy.settle()
    assert spy.device_messages() == []


def test_without_the_check_the_readings_are_still_weighed(make_assistant, store):
    a, _, _ = make_assistant()
    a.cfg.understand.check = False
    heard = a._hear(spoken(store, "Set the bedroom light to 40 percent.", snr=18))
    assert heard.checked is None and len(heard.readings) >= 2
    assert meaning(heard.intent) == meaning(a.understander.understand("set the bedroom light to 40 percent"))


def test_the_area_after_the_noun_snaps_too(make_assistant, spy):
    a, _, _ = make_assistant()
    out = run(a.handle_text("Turn off the light sim the kitchen."))
    spy.settle()
    assert out.intent.source == "fuzzy" and out.intent.confidence >= a.cfg.understand.act_threshold
    assert spy.device_messages() == [(KITCHEN, '{"state": "OFF"}')]

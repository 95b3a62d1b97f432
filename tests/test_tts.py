"""Piper says a long sentence clause by clause (less memory, sooner audio), and all of it is still said."""

from __future__ import annotations

import numpy as np

from assistant.audio.wav import to_pcm16k
from assistant.engines.tts_piper import pieces

EGG = ("To boil an egg, bring water to a boil, lower the egg in gently, and cook it for seven minutes for a "
       "soft yolk. Then cool it.")


def test_a_long_sentence_is_cut_after_its_clauses_and_a_short_one_is_not():
    assert pieces(EGG) == ["To boil an egg,", "bring water to a boil,", "lower the egg in gently,",
                           "and cook it for seven minutes for a soft yolk.", "Then cool it."]
    assert pieces("Okay, turning on the kitchen light.") == ["Okay, turning on the kitchen light."]
    assert pieces("  ") == []


def test_a_number_with_a_comma_stays_whole():
    long = "The timer for the roast in the big oven is set to 1,000 seconds, which is about seventeen minutes."
    assert pieces(long) == ["The timer for the roast in the big oven is set to 1,000 seconds,",
                            "which is about seventeen minutes."]


def test_the_clauses_are_all_said(engines):
    chunks = list(engines.tts.sentences(EGG))
    assert len(chunks) == 5
    longest = max(len(c) for c in chunks) / engines.tts.sample_rate
    whole = np.concatenate(chunks)
    assert longest < 0.5 * len(whole) / engines.tts.sample_rate  # no piece is most of the audio
    heard = engines.asr.transcribe(to_pcm16k(whole.astype(np.float32) / 32768, engines.tts.sample_rate)).lower()
    for words in ("boil an egg", "water", "gently", "minutes", "soft yolk", "cool it"):
        assert words in heard, heard

"""Endpointing decisions over speech probabilities (one per 32 ms window)."""

import numpy as np

from assistant.endpoint import Endpointer

FRAME = np.zeros(1280, np.int16)  # 80 ms = 2.5 windows; feed 5 probabilities per two frames


def feed(ep, probs):
    out, i = None, 0
    while out is None and i < len(probs):
        step = 3 if (i // 3) % 2 == 0 else 2
        out = ep.feed(FRAME, probs[i:i + step])
        i += step
    return out, i


def test_pause_ends_the_command():
    ep = Endpointer(silence_s=0.6)
    end, used = feed(ep, [0.0] * 10 + [0.9] * 30 + [0.05] * 40)
    assert end.reason == "pause"
    assert 0.6 <= end.hangover_s < 0.7
    assert used < 10 + 30 + 25


def test_a_short_dip_is_not_a_pause():
    ep = Endpointer(silence_s=0.6)
    end, _ = feed(ep, [0.9] * 20 + [0.4] * 30 + [0.9] * 10 + [0.0] * 30)
    assert end.reason == "pause" and ep.speech_s > 0.9  # the 0.4 dip (hysteresis band) did not end it


def test_silence_after_the_wake_word_times_out():
    end, used = feed(Endpointer(start_timeout_s=1.0), [0.1] * 100)
    assert end.reason == "no_speech" and used * 0.032 < 1.2


def test_a_click_does_not_start_a_command():
    end, _ = feed(Endpointer(start_timeout_s=1.0), [0.0] * 5 + [0.9] * 2 + [0.0] * 100)
    assert end.reason == "no_speech"


def test_endless_speech_is_cut():
    end, _ = feed(Endpointer(max_s=2.0), [0.9] * 200)
    assert end.reason == "max_length"


def test_leading_silence_is_trimmed():
    ep = Endpointer()
    end, _ = feed(ep, [0.0] * 50 + [0.9] * 20 + [0.0] * 30)
    assert len(end.audio) < len(ep.frames) * 1280 - 16000 * 1.0


def test_input_that_ends_mid_command_is_still_the_command():
    ep = Endpointer(silence_s=0.6)
    end, _ = feed(ep, [0.0] * 10 + [0.9] * 30 + [0.6] * 10)  # speech-like noise until the file ends
    assert end is None
    end = ep.finish()
    assert end.reason == "end_of_input" and len(end.audio) > 0
    quiet = Endpointer()
    feed(quiet, [0.0] * 20)
    assert quiet.finish() is None  # nothing was said: nothing to hear


def test_a_soft_first_word_under_the_threshold_is_kept():
    """ "I'd like a latte": the first words rise above the silence before they cross the threshold; the
    command starts where they rose (with the lead-in before that), not where they crossed."""
    ep = Endpointer(lead_in_s=0.0)
    feed(ep, [0.01] * 30 + [0.2, 0.3, 0.35, 0.4] + [0.9] * 20 + [0.0] * 30)
    assert abs(ep.onset_s - 30 * 512 / 16000) < 1e-9
    hovering = Endpointer(lead_in_s=0.0)  # noise that never falls to silence: at most a second before
    feed(hovering, [0.2] * 100 + [0.9] * 20 + [0.0] * 30)
    assert abs(hovering.onset_s - (100 * 512 / 16000 - 1.0)) < 0.04

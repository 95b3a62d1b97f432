"""Listening while it speaks, on spoken audio at the speed of a microphone and a sink that plays in real
time: "stop" without the wake word cuts a reply or a ring at once, the wake word cuts it and the command
after it is carried out, and the box's own voice saying "stop" does not stop it."""

from __future__ import annotations

import time

import numpy as np
from conftest import run
from test_everyday import TIMER, replies, rings
from test_home_live import wait_for
from test_presence import BASE, publish, queued
from test_voice_e2e import KITCHEN

from assistant.audio.io import FileSource
from assistant.audio.wav import to_pcm16k
from assistant.samples import piper, utterance

LONG = ("Here is a long announcement. The washing machine has finished its cycle, the dishwasher is still "
        "running, and the bread in the oven needs another twenty minutes. Please remember to water the "
        "plants in the living room before you go to bed tonight.")


def played_s(sink) -> float:
    return sum(len(c) for c in sink.chunks) / sink.rate if sink.rate else 0.0


def interruptions(events) -> list[str]:
    return [e.data["by"] for e in events if e.kind == "interrupted"]


def announce(a, spy, text: str) -> None:
    publish(spy, f"{BASE}/say", text)
    assert wait_for(lambda: queued(a))


def full_length_s(engines, text: str) -> float:
    return sum(len(c) for c in engines.tts.sentences(text)) / engines.tts.sample_rate


def test_stop_without_the_wake_word_cuts_a_long_announcement(store, engines, make_assistant, spy):
    a, sink, events = make_assistant(paced=True)
    announce(a, spy, LONG)
    run(a.run(FileSource(pcm=utterance(3.0, piper(store, "Stop."), 1.0), tail_s=0.3, paced=True)))
    assert interruptions(events) == ["stop"]
    full = full_length_s(engines, LONG)
    assert full > 10 and played_s(sink) < 5.5, (full, played_s(sink))  # cut within about a second of "stop"
    assert [e for e in events if e.kind == "intent"] == []  # not a command of its own


def test_the_wake_word_cuts_a_reply_and_the_command_after_it_is_carried_out(store, engines, make_assistant, spy):
    a, sink, events = make_assistant(paced=True)
    announce(a, spy, LONG)
    run(a.run(FileSource(pcm=utterance(3.0, piper(store, "Hey Jarvis."), 0.4,
                                       piper(store, "Turn on the kitchen light."), 1.0), tail_s=0.5, paced=True)))
    spy.settle()
    assert interruptions(events) == ["wake"]
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    assert played_s(sink) < full_length_s(engines, LONG)


def test_stop_during_a_timers_ring_stops_the_timer(store, make_assistant, spy):
    a, sink, events = make_assistant(paced=True)
    run(a.handle_text("Set a timer for 1 second."))
    time.sleep(1.2)
    # the ring (0.7 s) and "Your 1 second timer is done." play while "stop" is said over them
    run(a.run(FileSource(pcm=utterance(0.5, piper(store, "Stop."), 1.5), paced=True)))
    spy.settle()
    assert rings(sink) == 1 and a.timers.timers == {}
    assert interruptions(events) == ["stop"] and len(spy.on(f"{TIMER}/cancelled")) == 1


def test_its_own_voice_saying_stop_does_not_stop_it(store, engines, make_assistant, spy):
    """The microphone hears the reply itself (no echo cancellation), here with pauses between its sentences
    so that its "Stop." stands alone: its words are the box's, not the user's."""
    text = "A ringing timer is ended with one word. Stop. That is all it takes."
    a, sink, events = make_assistant(paced=True)
    announce(a, spy, text)
    echo = [to_pcm16k(c.astype(np.float32) / 32768, engines.tts.sample_rate) for c in engines.tts.sentences(text)]
    run(a.run(FileSource(pcm=utterance(0.1, echo[0], 0.5, echo[1], 0.5, echo[2], 1.0), tail_s=0.3, paced=True)))
    assert interruptions(events) == [] and replies(events) == [text]
    assert text in a.player.kept  # kept as audio: only a reply played to its end is

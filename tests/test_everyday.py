"""Timers, the time, "never mind" and the volume through the whole pipeline: spoken audio in, the real
models, the real broker, replies and rings out of the sink."""

from __future__ import annotations

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from conftest import EXAMPLE, run
from test_voice_e2e import command

from assistant import config
from assistant.audio.io import FileSource
from assistant.audio.sounds import Sounds
from assistant.handlers.clock import spoken_time
from assistant.pipeline import RING_LISTEN_S
from assistant.samples import piper, silence, utterance

TIMER = "assistant/demo/timer"


def replies(events) -> list[str]:
    return [e.data["text"] for e in events if e.kind == "reply"]


def sounds_played(sink) -> list[str]:
    """The box's sounds in the order played (replies left out)."""
    if not sink.rate:
        return []
    known = Sounds(sink.rate).pcm
    return [name for c in sink.chunks for name, pcm in known.items() if np.array_equal(c, pcm)]


def speech(sink) -> list[np.ndarray]:
    """What was played apart from the box's sounds (and the pauses after replies)."""
    known = list(Sounds(sink.rate).pcm.values()) if sink.rate else []
    return [c for c in sink.chunks if c.any() and not any(np.array_equal(c, k) for k in known)]


def rings(sink) -> int:
    return sounds_played(sink).count("ring")


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


def start_and_wait(store, a, seconds: int) -> None:
    run(a.run(FileSource(pcm=command(store, f"Set a timer for {seconds} seconds."))))
    time.sleep(seconds + 0.2)


def test_a_spoken_timer_rings_is_published_and_stopped_with_the_wake_word(store, make_assistant, spy):
    a, sink, events = make_assistant()
    start_and_wait(store, a, 2)
    assert [t["duration_s"] for t in spy.on(f"{TIMER}/started")] == [2]
    # The ring, a pause past the no-wake-word window, then "Hey Jarvis, stop."
    run(a.run(FileSource(pcm=utterance(0.3, RING_LISTEN_S + 1.5, command(store, "Stop.")))))
    spy.settle()
    assert rings(sink) >= 1 and "Your 2 second timer is done." in replies(events)
    assert [t["name"] for t in spy.on(f"{TIMER}/finished")] == [""]
    assert len(spy.on(f"{TIMER}/cancelled")) == 1, heard(events)
    assert a.timers.timers == {} and spy.on("assistant/demo/timers")[-1]["count"] == 0
    assert spy.device_messages() == []


def heard(events) -> list[tuple[str, object]]:
    """What the box heard and said, in order: says why a turn went otherwise (the test runs on real speech
    and real time, so a rare miss is to be read, not guessed)."""
    keys = {"wake": "score", "transcript": "text", "interrupted": "by", "reply": "text", "state": "state"}
    return [(e.kind, e.data.get(keys[e.kind])) for e in events if e.kind in keys]


def test_stop_needs_no_wake_word_while_a_timer_rings(store, make_assistant, spy):
    a, sink, events = make_assistant()
    run(a.handle_text("Set a timer for 1 second."))
    time.sleep(1.2)
    run(a.run(FileSource(pcm=utterance(0.3, 0.8, piper(store, "Stop."), 1.0))))
    assert rings(sink) == 1 and a.timers.timers == {}
    assert [e.data["intent"].name for e in events if e.kind == "intent"][-1] == "HassNevermind"


def test_two_named_timers_one_cancelled_by_name_and_status(make_assistant, spy):
    a, _, _ = make_assistant()
    said = [run(a.handle_text(t)).reply for t in ("Set a 5 minute pizza timer.", "Set a tea timer for 10 minutes.")]
    assert said == ["Pizza timer, 5 minutes, started.", "Tea timer, 10 minutes, started."]
    started = time.monotonic()
    time.sleep(1.5)
    assert run(a.handle_text("Cancel the tea timer.")).reply == "Tea timer cancelled."
    status = run(a.handle_text("How much time is left on the pizza timer?")).reply
    minutes, seconds = map(int, re.fullmatch(r"The pizza timer has (\d) minutes and (\d+) seconds left\.", status).groups())
    assert abs(minutes * 60 + seconds - (300 - (time.monotonic() - started))) <= 1
    spy.settle()
    assert [t["name"] for t in spy.on(f"{TIMER}/started")] == ["pizza", "tea"]
    assert [t["name"] for t in spy.on(f"{TIMER}/cancelled")] == ["tea"]
    assert spy.on("assistant/demo/timers")[-1]["next"]["label"] == "pizza timer"


def test_a_timer_survives_a_restart_and_rings_on_time(make_assistant):
    first, _, _ = make_assistant()
    run(first.handle_text("Set a timer for 8 seconds."))
    started = time.monotonic()
    first.close()
    again, sink, events = make_assistant()  # the same state directory
    run(again.run(FileSource(pcm=silence(0.3))))
    assert rings(sink) == 0 and time.monotonic() - started < 8  # not before its time
    time.sleep(8.2 - (time.monotonic() - started))
    run(again.run(FileSource(pcm=silence(0.3))))
    assert rings(sink) == 1 and replies(events) == ["Your 8 second timer is done."]


def test_never_mind_does_nothing(store, make_assistant, spy):
    a, sink, events = make_assistant()
    run(a.run(FileSource(pcm=command(store, "Never mind."))))
    spy.settle()
    assert [e.data["intent"].name for e in events if e.kind == "intent"] == ["HassNevermind"]
    assert replies(events) == [""] and speech(sink) == []
    assert sounds_played(sink) == ["listening", "done"]  # it heard, took it, and said nothing
    assert spy.device_messages() == [] and not [t for t, _ in spy.messages if "/intent/" in t]


def test_the_time_is_said_in_the_configured_zone(store, make_assistant):
    cfg = config.load(EXAMPLE)
    cfg.time_zone = "Pacific/Kiritimati"  # UTC+14: never the test machine's own
    a, _, events = make_assistant(cfg)
    before = spoken_time(datetime.now(ZoneInfo(cfg.time_zone)))
    run(a.run(FileSource(pcm=command(store, "What time is it?"))))
    assert replies(events)[0] in (before, spoken_time(datetime.now(ZoneInfo(cfg.time_zone))))


def test_volume_at_40_percent_plays_at_0_4_and_survives_a_restart(store, make_assistant):
    a, sink, events = make_assistant()
    run(a.run(FileSource(pcm=command(store, "Set the volume to 40 percent."))))
    assert replies(events) == ["Volume 40 percent."]
    full = rms(Sounds(sink.rate)["ring"])
    run(a.player.ring())
    assert abs(rms(sink.chunks[-1]) / full - 0.4) < 0.005
    a.close()
    again, sink, _ = make_assistant()
    run(again.player.ring())
    assert abs(rms(sink.chunks[-1]) / rms(Sounds(sink.rate)["ring"]) - 0.4) < 0.005


def test_everyday_sentences_are_whole_when_nothing_that_may_follow_changes_them(make_assistant):
    a, _, _ = make_assistant()
    graph, clean = a.understanding.templates.everyday, a.understanding.templates.clean
    for whole in ("what time is it", "what is the time", "what day is it"):  # "right now", "today" may follow
        assert graph.says_all(clean(whole)), whole
    for goes_on in ("set a timer for five minutes",  # "and thirty seconds"
                    "cancel the timer",  # "called pizza": a name, which the graph cannot list
                    "set a timer for five", "what time"):
        assert not graph.says_all(clean(goes_on)), goes_on


def turn_endpoints(events) -> list[str]:
    return [e.data["metrics"].endpoint_reason for e in events if e.kind == "turn"]


def test_the_time_is_said_before_the_pause_is_over_and_a_timer_waits_for_it(store, make_assistant):
    cfg = config.load(EXAMPLE)
    cfg.listen.silence_ms = 1500  # time for the early decision on a machine busy with other tests
    a, _, events = make_assistant(cfg)
    run(a.run(FileSource(pcm=utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, "What time is it?"), 2))))
    assert turn_endpoints(events) == ["early"] and re.search(r"\d", replies(events)[0])
    a, _, events = make_assistant()
    run(a.run(FileSource(pcm=command(store, "Set a timer for five minutes."))))
    assert turn_endpoints(events) == ["pause"]
    assert "5 minute" in replies(events)[0] or "five minute" in replies(events)[0].lower()
    a.timers.cancel(next(iter(a.timers.timers.values())))

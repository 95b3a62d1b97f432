"""Hearing ahead (ahead.py) on spoken audio through the pipeline and a real broker: a whole command is
acted on after a short pause, and a pause in the middle of a sentence that can go on is waited out."""

from __future__ import annotations

import numpy as np
from conftest import EXAMPLE, run
from test_voice_e2e import KITCHEN

from assistant import config
from assistant.audio.io import FileSource
from assistant.samples import piper, trimmed, utterance

BEDROOM = "zigbee2mqtt/bedroom_light/set"


def said(store, *parts) -> FileSource:
    """The parts (text, or seconds of silence) as said right after the wake word, then a second of quiet."""
    spoken = [trimmed(piper(store, p)) if isinstance(p, str) else p for p in parts]
    return FileSource(pcm=utterance(0.2, *spoken, 1.0))


def unhurried():
    """The example home with a pause of 1.5 s to end a command: an early decision then has time even on a
    machine busy with other tests, where a reading may take half a second."""
    cfg = config.load(EXAMPLE)
    cfg.listen.silence_ms = 1500
    return cfg


def endpoints(events) -> list[str]:
    return [e.data["metrics"].endpoint_reason for e in events if e.kind == "turn"]


def transcripts(events) -> list[str]:
    return [e.data["text"] for e in events if e.kind == "transcript"]


def test_a_whole_command_is_acted_on_before_the_pause_is_over(store, make_assistant, spy):
    a, _, events = make_assistant(unhurried())
    run(a.run(awake=True, source=said(store, "Turn on the kitchen light.")))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    assert endpoints(events) == ["early"]
    turn = next(e.data["metrics"] for e in events if e.kind == "turn")
    assert turn.hangover_s < a.cfg.listen.silence_ms / 1000 + turn.asr_s  # the rest of the pause was saved


def test_on_a_live_source_a_whole_command_is_acted_on_when_its_reading_is_done(store, make_assistant, spy):
    a, _, events = make_assistant(unhurried())
    source = said(store, "Turn on the kitchen light.")
    source.realtime = True  # paced like a microphone: the reading runs beside the listening
    run(a.run(awake=True, source=source))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]
    assert endpoints(events) == ["early"]


def test_a_pause_after_a_sentence_that_goes_on_is_waited_out(store, make_assistant, spy):
    a, _, events = make_assistant()
    run(a.run(awake=True, source=said(store, "Set the bedroom light to", 0.45, "forty percent.")))
    spy.settle()
    assert spy.on(BEDROOM) == [{"state": "ON", "brightness": 102}]
    assert len(transcripts(events)) == 1 and "40" in transcripts(events)[0]


def test_a_pause_after_the_is_waited_out(store, make_assistant, spy):
    a, _, events = make_assistant()
    run(a.run(awake=True, source=said(store, "Turn on the", 0.4, "kitchen light.")))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}] and len(transcripts(events)) == 1


def test_and_then_more_is_not_cut_short(store, make_assistant, spy):
    a, _, events = make_assistant()
    run(a.run(awake=True, source=said(store, "Turn on the kitchen light and the", 0.45, "bedroom light.")))
    spy.settle()
    assert len(transcripts(events)) == 1 and "bedroom" in transcripts(events)[0].lower()
    assert endpoints(events) == ["pause"]  # the whole sentence was heard before anything was decided


def test_without_early_decisions_the_whole_pause_is_waited(store, make_assistant, spy):
    a, _, events = make_assistant()
    a.ahead.enabled = False
    run(a.run(awake=True, source=said(store, "Turn on the kitchen light.")))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}] and endpoints(events) == ["pause"]


def test_a_reading_dropped_while_it_runs_finishes_without_error():
    """On a live microphone the speaker may go on while a reading runs: it is dropped, and when it ends it
    fills in its own reading, not the newer one (or none)."""
    import asyncio

    from assistant.ahead import HearingAhead
    from assistant.endpoint import Endpointer

    async def slow_hear(audio):
        await asyncio.sleep(0.05)
        return "turn on the kitchen light", None

    async def scenario():
        ahead = HearingAhead(slow_hear, lambda heard: False)
        ep = Endpointer()
        frame = np.zeros(1280, np.int16)
        for probs in [[0.9] * 5] * 4 + [[0.0] * 5] * 2:  # speech, then 0.32 s of pause: a reading begins
            ep.feed(frame, probs)
            await ahead.step(ep, realtime=True)
        first = ahead.reading
        ep.feed(frame, [0.9] * 5)  # the speaker goes on: the reading is dropped while it runs
        await ahead.step(ep, realtime=True)
        assert ahead.reading is None
        await first.task  # it ends on its own reading without error
        return first

    first = asyncio.run(scenario())
    assert first.seconds > 0 and first.whole is False


def test_a_reading_done_between_two_frames_is_looked_at_before_the_next_frame():
    """On a live source a whole command is acted on when its reading is done, not a frame (80 ms) later:
    the frames give a None in between, and the frame that follows is not lost."""
    import asyncio

    from assistant.pipeline import Frames

    class Mic:
        realtime = True

        def __init__(self):
            self.release = asyncio.Event()

        async def frames(self):
            yield np.zeros(1280, np.int16)
            await self.release.wait()
            yield np.ones(1280, np.int16)

    async def scenario():
        mic = Mic()
        frames = Frames(mic)
        assert (await anext(frames)).sum() == 0
        reading = asyncio.get_running_loop().create_future()
        frames.until(reading)
        waiting = asyncio.ensure_future(anext(frames))
        await asyncio.sleep(0)
        assert not waiting.done()  # neither the reading nor the next frame is there
        reading.set_result(("turn on the kitchen light", None))
        assert await waiting is None
        mic.release.set()
        assert (await anext(frames)).sum() == 1280  # the frame that came meanwhile
        frames.until(reading)  # a reading already done is no reason to stop between frames
        frames.close()

    asyncio.run(scenario())


def test_a_command_said_with_a_small_word_of_ones_own_is_whole(make_assistant):
    from assistant.engines.base import Hypothesis
    from assistant.understand.rescore import Heard

    a, _, _ = make_assistant()
    u = a.understanding

    def heard(*texts):
        return Heard(texts[0], u.lookup(texts[0]), [Hypothesis(t, -0.2) for t in texts])

    assert u.lookup("Turn off my kitchen light.") is not None
    assert u.whole(heard("Turn off my kitchen light.", "Turn off the kitchen light."))
    # one reading (a greedy one, heard word for word): the home's sentence differs from it in "my" only
    assert u.whole(heard("Turn off my kitchen light."))
    assert u.whole(heard("Turn off my kitchen light.", "Turn off the bedroom light."))
    for goes_on in ("Turn off my kitchen light and", "Turn off the kitchen light and the"):
        assert not u.whole(heard(goes_on, "Turn off the kitchen light.")), goes_on

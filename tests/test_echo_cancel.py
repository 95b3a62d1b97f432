"""Listening while it speaks, in a room: the box's microphone hears the user and, louder, what its own
speaker plays (tests/sound_server.py, `Echo`: the speaker's sound as the sound server played it, late,
through a room's impulse response), and the box's echo canceller (assistant/audio/echo.py, WebRTC's, in
process) takes its own voice out again. Minutes of real-time audio: `make test-room`, not
`make test`; each test ends the run, with every thread's stack, if it overruns its limit. Figures are
printed (-s)."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from conftest import DEVSET, needs_devset
from sound_server import SPEAKER_RATE, Echo
from test_interrupt import LONG, interruptions
from test_presence import BASE, publish
from test_sound_server import KITCHEN, command, until

from assistant.audio import echo, io
from assistant.audio.wav import load_pcm16k
from assistant.samples import piper

pytestmark = [pytest.mark.room, needs_devset]
ECHO_GAIN = 1.0  # the reply at the microphone: louder than the user (USER_GAIN), as a box's own speaker is
USER_GAIN = 0.5


@pytest.fixture
def limit(request):
    """A hard time limit for a test (`@pytest.mark.limit(seconds)`): past it the run ends, printing where
    every thread was, since a thread stuck in PortAudio cannot be interrupted from Python; last, in a few
    lines, where the project's own code was (a long log may keep only its end)."""
    seconds = request.node.get_closest_marker("limit").args[0]

    def overrun():
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        print(f"\n{request.node.name} overran its {seconds} s; the project's own frames, innermost first:",
              file=sys.stderr)
        names = {t.ident: t.name for t in threading.enumerate()}
        stacks = {names.get(ident, ident): traceback.extract_stack(frame)
                  for ident, frame in sys._current_frames().items()}
        # The coroutines waiting on the event loop are on no thread's stack (asyncio's own set of tasks).
        for task in list(getattr(asyncio.tasks, "_all_tasks", ())):
            if not task.done():
                stacks[f"task {task.get_name()}"] = traceback.StackSummary.extract(
                    (f, f.f_lineno) for f in task.get_stack(limit=8))
        for name, stack in stacks.items():
            ours = [f for f in stack if "/site-packages/" not in f.filename and "/lib/python3" not in f.filename
                    and not f.filename.startswith("<") and f.name != "overrun"]
            if ours:
                where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(ours[-8:]))
                print(f"  {name}: {where}", file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(seconds, overrun)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(seconds + 15, exit=True, file=sys.stderr)  # should Python itself be stuck
    yield
    timer.cancel()
    faulthandler.cancel_dump_traceback_later()


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def room_echo(server) -> Echo:
    rir = load_pcm16k(DEVSET / "noise-rir" / "rir4.wav")[:4000]  # a small room's first quarter second
    return Echo(server, gain=ECHO_GAIN, rir=rir)


class Traced(echo.EchoCanceller):
    """The canceller, keeping what it was given: each frame as heard and the reference paired with it."""

    def __init__(self, apm):
        super().__init__(apm)
        self.heard: list[np.ndarray] = []
        self.paired: list[np.ndarray] = []

    def _process(self, frame, captured_at):
        self.heard.append(frame.copy())
        self.paired.append(self.reference.take(captured_at - self.extra_delay_s, len(frame)))
        return super()._process(frame, captured_at)


def lag_ms(reference: np.ndarray, heard: np.ndarray) -> float:
    """How much later than its paired reference the echo is heard (cross-correlation's peak)."""
    from scipy.signal import correlate

    a, b = reference.astype(np.float64), heard.astype(np.float64)
    c = correlate(b, a, mode="full", method="fft")
    return (int(np.argmax(np.abs(c))) - (len(a) - 1)) / 16


@pytest.mark.limit(90)
def test_the_canceller_takes_the_speaker_out_of_the_microphone(sound_server, store, limit):
    """The plumbing alone: a long reply played through the sink while the room's microphone hears it:
    the echo is paired with its reference early (never late), and taken out."""
    canceller, why = echo.make()
    assert canceller is not None, why
    traced = Traced(canceller.apm)
    mic, sink = io.MicSource("mic", echo=traced), io.SpeakerSink("speaker")
    sink.echo = traced
    reply = piper(store, LONG)  # at 16 kHz: played at the speaker's rate below
    import soxr

    reply = (soxr.resample(reply.astype(np.float32) / 32768, 16000, SPEAKER_RATE) * 32767).astype(np.int16)
    out: list[np.ndarray] = []

    async def go():
        async def listen():
            async for f in mic.frames():
                out.append(f)

        task = asyncio.ensure_future(listen())
        with sound_server.talk(echo=room_echo(sound_server)) as room:
            assert await until(lambda: len(out) >= 5, 5), "no frames from the microphone"
            start = len(out)
            await sink.play(reply, SPEAKER_RATE)
            await asyncio.sleep(0.5)
            end = len(out)
            level = room.echo.level()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return start, end, level

    t = time.monotonic()
    start, end, level = asyncio.run(go())
    sink.close()
    traced.close()
    heard, paired = np.concatenate(traced.heard[start:end]), np.concatenate(traced.paired[start:end])
    cleaned = np.concatenate(out[start:end])
    settled = len(heard) // 4  # after the canceller's first second or so
    lag = lag_ms(paired, heard)
    stats = traced.stats()
    print(f"\nthe room's microphone while the reply plays: RMS {rms(heard[settled:]):.0f} as heard, "
          f"{rms(cleaned[settled:]):.0f} cancelled (echo level {level:.0f}); the echo comes {lag:.0f} ms after "
          f"its paired reference; {stats['frames']} frames of 10 ms, {stats['ms_per_frame']} ms CPU each "
          f"({time.monotonic() - t:.1f} s)")
    assert 0 <= lag <= 400, "the reference must come before its echo, within the canceller's reach"
    # WebRTC's canceller took out 18 to 30 dB here, depending on how busy the shared machine was (it runs
    # on a thread of its own); the barge-in tests below say whether that is enough.
    assert rms(cleaned[settled:]) < rms(heard[settled:]) / 10 ** (15 / 20), "less than 15 dB taken out"
    assert stats["failed"] == 0 and stats["dropped"] == 0


TRIES = 10
SAY_EVERY_S = 10.5  # the box takes at most six announcements a minute
OWN = [  # 50 short sentences the box says; a few of them name the wake word, as a reply may
    "It is sunny today.", "The kitchen light is on.", "Dinner is ready.", "The door is locked.",
    "Your timer is set.", "It is half past seven.", "The washing machine has finished.", "Good morning.",
    "The heating is on.", "The bedroom light is off.", "To ask me something, say hey Jarvis.",
    "It will rain tomorrow.", "The garage door is closed.", "The oven is hot.", "Time for bed.",
    "The living room is warm.", "I did not catch that.", "The hallway light is on.", "The post has arrived.",
    "The plants need water.", "Jarvis is listening.", "The fan is off.", "The music is paused.",
    "The front door is open.", "It is cold outside.", "Your package is here.", "The alarm is set.",
    "Stop the music, please.", "The bath is ready.", "The windows are closed.", "Say hey Jarvis to wake me.",
    "The coffee is ready.", "The office light is off.", "It is windy today.", "The dryer is done.",
    "The guest room is ready.", "The porch light is on.", "The battery is low.", "The kettle has boiled.",
    "It is twelve degrees.", "The dishwasher is running.", "The blinds are down.", "Hey Jarvis, that was me.",
    "The radio is on.", "The cat flap is locked.", "The study is quiet.", "The lights are dimmed.",
    "The bins go out tonight.", "The car is charged.", "Good night.",
]


def raw_ms(a) -> float:
    """The second look's CPU per frame: the wake words over the raw audio, and over what the speaker played
    when they heard one."""
    return 1000 * a.interrupter.raw_cpu_s / max(1, a.interrupter.raw_frames)


def box_in_room(make_assistant, aec: bool):
    """The box on the room's microphone and speaker, with its echo canceller as `assistant run` wires it,
    or without."""
    mic, sink = io.MicSource("mic"), io.SpeakerSink("speaker")
    if aec:
        assert io.cancel_echo(mic, sink) is not None, mic.echo_off
    a, _, events = make_assistant(sink=sink)
    return a, events, mic, sink


async def idle(a, quiet_s: float = 1.0) -> None:
    """Until the box has said all it had to and has been idle for `quiet_s`."""
    assert await until(lambda: not a.busy and not a.presence.inbox.queue.qsize(), 60)
    await asyncio.sleep(quiet_s)
    assert await until(lambda: not a.busy, 30)


def barge_in(server, store, make_assistant, spy, aec: bool, misses_allowed: int = TRIES) -> list[tuple[bool, bool]]:
    """"Hey Jarvis, turn on the kitchen light" said into the room two seconds into a long announcement,
    TRIES times (fewer once the wake word was missed more than `misses_allowed` times): whether the wake
    word cut it, and whether the command that followed switched the light, each time. Printed with the
    levels."""
    a, events, mic, sink = box_in_room(make_assistant, aec)
    pcm = (command(store, "Turn on the kitchen light.") * USER_GAIN).astype(np.int16)
    results: list[tuple[bool, bool]] = []
    room = room_echo(server)

    async def go():
        task = asyncio.ensure_future(a.run(mic))
        with server.talk(echo=room) as talk:
            assert await until(lambda: a.ears.frame_at is not None, 10)
            said_at = 0.0
            while len(results) < TRIES and [cut for cut, _ in results].count(False) <= misses_allowed:
                before, cut_before, n = len(spy.on(KITCHEN)), len(interruptions(events)), len(events)
                await asyncio.sleep(max(0.0, said_at + SAY_EVERY_S - time.monotonic()))
                said_at = time.monotonic()
                publish(spy, f"{BASE}/say", LONG)
                assert await until(lambda: a.player.speaking, 15), "the announcement did not start"
                await asyncio.sleep(2.0)  # well into it
                talk.say(pcm)
                await until(lambda: len(spy.on(KITCHEN)) > before, 15)
                await idle(a)
                results.append((interruptions(events)[cut_before:][:1] == ["wake"], len(spy.on(KITCHEN)) > before))
                print("try", interruptions(events)[cut_before:], "light switched:", len(spy.on(KITCHEN)) > before,
                      [(e.kind, e.data.get("text", e.data.get("score", ""))) for e in events[n:]
                       if e.kind in ("wake", "transcript", "interrupted")])
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    started = time.monotonic()
    asyncio.run(go())
    sink.close()
    print(f"\nwake word over a long announcement, {'with' if aec else 'without'} echo cancellation: "
          f"in {sum(cut for cut, _ in results)} of {len(results)} tries the wake word cut it, in "
          f"{sum(cut and switched for cut, switched in results)} the command after it switched the light "
          f"(echo RMS {room.level():.0f} at the microphone, "
          f"the user's voice {rms(pcm[np.abs(pcm) > 300]):.0f}; {room.gaps} gaps in the echo; "
          f"{time.monotonic() - started:.0f} s){'' if mic.echo is None else f'; canceller {mic.echo.stats()}'}"
          + ("" if a.interrupter.raw_wake is None else
             f"; the wake word's second look: {raw_ms(a):.2f} ms CPU per 80 ms frame"))
    return results


@pytest.mark.limit(240)
def test_the_wake_word_barges_in_through_the_echo_canceller(sound_server, store, make_assistant, spy, limit):
    """The goal: the wake word heard over the louder reply in at least 9 of 10 tries (it stops at the second
    miss). The command after it is recognised from the cleaned audio: how often it switched the light is
    printed, not asserted (the recogniser's errors on a voice just out of double talk)."""
    results = barge_in(sound_server, store, make_assistant, spy, aec=True, misses_allowed=1)
    assert sum(cut for cut, _ in results) >= 9, results


@pytest.mark.limit(240)
def test_without_the_canceller_the_wake_word_cuts_it_too(sound_server, store, make_assistant, spy, limit):
    """The same room without it, for comparison: the raw microphone's wake word, with the reply's own words
    as the only guard against its own voice, cuts the reply too."""
    results = barge_in(sound_server, store, make_assistant, spy, aec=False, misses_allowed=1)
    assert sum(cut for cut, _ in results) >= 9, results


@pytest.mark.limit(180)
def test_its_own_voice_never_wakes_it(sound_server, make_assistant, spy, limit):
    """OWN said by the box in five announcements of ten sentences (at most six a minute are taken), through
    the canceller: no wake word, no interruption by one (and at most one "stop", see below)."""
    a, events, mic, sink = box_in_room(make_assistant, aec=True)
    room = room_echo(sound_server)

    async def go():
        task = asyncio.ensure_future(a.run(mic))
        with sound_server.talk(echo=room):
            assert await until(lambda: a.ears.frame_at is not None, 10)
            for i in range(0, len(OWN), 10):
                publish(spy, f"{BASE}/say", " ".join(OWN[i:i + 10]))
                assert await until(lambda: a.busy, 15), "the announcement did not start"
                await idle(a, quiet_s=0.5)
            await asyncio.sleep(1.5)  # the tail of the last one
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    started = time.monotonic()
    asyncio.run(go())
    sink.close()
    wakes = sum(e.kind == "wake" for e in events)
    cuts = len(interruptions(events))
    said = sum(len(e.data["text"].split(". ")) for e in events if e.kind == "announcement")
    print(f"\nits own voice through the canceller: {wakes} wake events and {cuts} interruptions in {said} "
          f"sentences (echo RMS {room.level():.0f}; {time.monotonic() - started:.0f} s); canceller {mic.echo.stats()}; "
          f"{a.interrupter.own_found} wake words in the raw audio found in what the speaker played"
          + "".join(f"\n  {e.kind} {e.data}" for e in events if e.kind in ("wake", "interrupted", "announcement")))
    by = interruptions(events)
    # The goal is no wake word. A "stop" recognised in what the canceller leaves of the box's own voice
    # cut one reply in 2 of 9 runs: a known fault of the stop listening, allowed once here, not twice.
    assert said == 50 and wakes == 0 and "wake" not in by and len(by) <= 1, (wakes, by, said)
    # the first ten sentences say no word of the wake phrase: the raw audio's wake word listened (~15 s)
    assert a.interrupter.raw_frames > 100, "the raw audio's wake word did not listen while it spoke"

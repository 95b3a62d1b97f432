"""Listening while it speaks, in a room: the box's microphone hears the user and, louder, what its own
speaker plays (tests/sound_server.py, `Echo`: the speaker's sound as the sound server played it, late,
through a room's impulse response), and the box's echo canceller (assistant/audio/echo.py, WebRTC's, in
process) takes its own voice out again. Minutes of real-time audio: `make test-room`, not `make test`.
Figures are printed (-s)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from conftest import DEVSET, needs_devset
from sound_server import SPEAKER_RATE, Echo
from test_interrupt import LONG
from test_sound_server import until

from assistant.audio import echo, io
from assistant.audio.wav import load_pcm16k
from assistant.samples import piper

pytestmark = [pytest.mark.room, needs_devset]
ECHO_GAIN = 1.0  # the reply at the microphone: louder than the user (USER_GAIN), as a box's own speaker is
USER_GAIN = 0.5


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


def test_the_canceller_takes_the_speaker_out_of_the_microphone(sound_server, store):
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
    assert rms(cleaned[settled:]) < rms(heard[settled:]) / 10, "less than 20 dB taken out"
    assert stats["failed"] == 0 and stats["dropped"] == 0

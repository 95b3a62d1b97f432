"""Microphones and speakers that come and go, on a stand-in for PortAudio: the source and the sink notice,
say so, and open the device again. tests/test_sound_server.py does the same through a real sound server."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import numpy as np
import pytest

from assistant.audio import io
from assistant.types import FRAME_SAMPLES


class FakePortAudio:
    """Devices by name: present or not. An input stream on a present device calls back every 10 ms from a
    thread of its own; taking its device away makes it go quiet (as through a sound server) or end (as
    bare ALSA does) with `ends`. Output streams take what is written while their device is there."""

    PortAudioError = type("PortAudioError", (Exception,), {})

    def __init__(self, present=("mic", "speaker")):
        self.present = set(present)
        self.listed = set(present)  # what PortAudio was told at its last initialisation
        self.opened: list[str] = []
        self.rescans = 0
        self.written: list[np.ndarray] = []
        self.streams: list = []
        self.ends = False
        fake = self

        class InputStream:
            def __init__(self, device=None, callback=None, **kw):
                fake._check(device)
                self.device, self.callback = device, callback
                self.active, self.closed = False, False
                fake.opened.append(f"in:{device}")
                fake.streams.append(self)

            def start(self):
                self.active = True
                threading.Thread(target=self._run, daemon=True).start()

            def _run(self):
                while self.active and not self.closed:
                    time.sleep(0.01)
                    if self.device not in fake.present:
                        if fake.ends:
                            self.active = False
                        continue
                    self.callback(np.ones((FRAME_SAMPLES, 1), np.int16), FRAME_SAMPLES, None, None)

            def close(self):
                self.closed, self.active = True, False

            def stop(self):
                self.active = False

        class OutputStream:
            def __init__(self, device=None, **kw):
                fake._check(device)
                self.device, self.active = device, False
                fake.opened.append(f"out:{device}")

            def start(self):
                self.active = True

            def write(self, pcm):
                if self.device not in fake.present:
                    raise fake.PortAudioError("Unanticipated host error")
                fake.written.append(pcm[:, 0].copy())

            def abort(self):
                pass

            def stop(self):
                self.active = False

            def close(self):
                self.active = False

        self.InputStream, self.OutputStream = InputStream, OutputStream

    def _check(self, device):
        if device not in self.listed:
            raise ValueError(f"No device matching {device!r}")
        if device not in self.present:
            raise self.PortAudioError("Error opening stream: Unanticipated host error")

    def _terminate(self):
        self.rescans += 1
        self.listed = set(self.present)

    def _initialize(self):
        pass


@pytest.fixture
def pa(monkeypatch):
    fake = FakePortAudio()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    return fake


def quick(mic: io.MicSource) -> io.MicSource:
    mic.retry_s, mic.stall_s = 0.05, 0.2
    return mic


async def take(source, n: int, each=None) -> list[np.ndarray]:
    out = []
    async for f in source.frames():
        out.append(f)
        if each:
            each(len(out))
        if len(out) >= n:
            break
    return out


def test_a_microphone_that_appears_late_is_waited_for(pa):
    """Not there at the start: waited for without frames (systemd hears READY=1 only with audio), PortAudio
    initialised again so that it lists it, then opened."""
    pa.present = pa.listed = set()
    mic = quick(io.MicSource("mic"))
    threading.Timer(0.2, lambda: pa.present.add("mic")).start()
    frames = asyncio.run(take(mic, 1))
    assert frames[0].tolist() == [1] * FRAME_SAMPLES
    assert pa.rescans >= 1 and pa.opened[-1] == "in:mic" and mic.reopened == 0 and mic.missing is None


@pytest.mark.parametrize("ends", [False, True], ids=["goes-quiet", "stream-ends"])
def test_a_microphone_that_goes_and_comes_back_is_opened_again(pa, ends):
    """Taken away mid-run: noticed, silence meanwhile at a microphone's pace, opened again when back."""
    pa.ends = ends
    mic = quick(io.MicSource("mic"))
    seen = []

    def script(n):
        if n == 5:
            pa.present.discard("mic")
        seen.append((n, mic.missing))

    async def run():
        task = asyncio.ensure_future(take(mic, 40, script))
        while not mic.missing:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        pa.present.add("mic")
        return await task

    frames = asyncio.run(run())
    kinds = ["voice" if f.any() else "silence" for f in frames]
    assert kinds[:5] == ["voice"] * 5 and "silence" in kinds and kinds[-1] == "voice", kinds
    assert mic.reopened == 1 and mic.missing is None
    assert pa.opened.count("in:mic") >= 2
    assert any(why for _, why in seen)  # it said what was missing meanwhile


def test_the_speaker_is_opened_again_by_the_next_reply(pa):
    """Gone between two replies: the next reply opens it again and plays. Gone while a reply plays: that
    reply fails (raised) and the next one opens it again."""
    sink = io.SpeakerSink("speaker")
    tone = np.full(22050 // 5, 7, np.int16)

    async def run():
        await sink.play(tone, 22050)
        pa.present.discard("speaker")
        pa.present.add("speaker")  # unplugged and plugged in again between two replies
        sink.stream.device = "gone"  # its old stream is dead
        await sink.play(tone, 22050)
        assert sink.reopened == 1 and sink.failed == 0
        pa.present.discard("speaker")
        with pytest.raises(pa.PortAudioError):
            await sink.play(tone, 22050)
        assert sink.failed == 1 and sink.missing
        pa.present.add("speaker")
        await sink.play(tone, 22050)

    asyncio.run(run())
    assert sink.reopened == 2 and sink.missing is None
    assert sum(len(w) for w in pa.written) == 3 * len(tone)


def test_a_rescan_waits_for_the_speaker_to_finish(pa):
    """Initialising PortAudio again ends every stream: not while a reply plays, nor between two of its
    sentences; the speaker itself may ask for it."""
    sink = io.SpeakerSink("speaker")
    mic = io.MicSource("mic")
    sink.playing = True
    assert not io.rescan(pa, by=mic) and pa.rescans == 0
    assert io.rescan(pa, by=sink) and pa.rescans == 1
    sink.playing = False
    asyncio.run(sink.play(np.zeros(2205, np.int16), 22050))
    assert sink.busy and not io.rescan(pa, by=mic)  # the next sentence may be on its way
    sink.quiet_from -= sink.GRACE_S + io.SpeakerSink.SLICE_S
    assert io.rescan(pa, by=mic) and pa.rescans == 2 and sink.stream is None

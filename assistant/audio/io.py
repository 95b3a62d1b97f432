"""Where frames come from (a WAV file or a microphone) and where replies go (a WAV file or a speaker).

The pipeline sees the same interface for both, so tests, benchmarks and the live box run the same code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from ..sdnotify import notify
from ..types import FRAME_SAMPLES, SAMPLE_RATE
from .wav import load_pcm16k, write_wav

log = logging.getLogger(__name__)


class FileSource:
    """A WAV file as frames, as fast as the pipeline takes them, or `paced` at the speed of a microphone
    (the box then listens while it speaks, as live); ends at the end of the file."""

    def __init__(self, path: str | Path | None = None, pcm: np.ndarray | None = None, tail_s: float = 1.5,
                 paced: bool = False):
        self.realtime = paced
        pcm = load_pcm16k(path) if pcm is None else pcm
        # Trailing silence so a command that ends with the file still gets its endpoint.
        pad = (-len(pcm)) % FRAME_SAMPLES + int(tail_s * SAMPLE_RATE) // FRAME_SAMPLES * FRAME_SAMPLES
        self.pcm = np.concatenate([pcm.astype(np.int16), np.zeros(pad, np.int16)])

    @property
    def seconds(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    async def frames(self) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        due = loop.time()
        for i in range(0, len(self.pcm), FRAME_SAMPLES):
            if self.realtime:
                due += FRAME_SAMPLES / SAMPLE_RATE
                await asyncio.sleep(max(0.0, due - loop.time()))
            yield self.pcm[i:i + FRAME_SAMPLES]

    def flush(self) -> None:
        pass


class MicSource:
    """The microphone through PortAudio. The audio thread hands frames to the loop; a full queue drops
    the oldest frame and counts it, so a slow consumer never blocks the audio callback."""

    realtime = True

    retry_s = 2.0

    def __init__(self, device: str = "", max_frames: int = 64):
        self.device = int(device) if device.isdigit() else (device or None)
        self.queue: asyncio.Queue[np.ndarray] = asyncio.Queue(max_frames)
        self.dropped = 0

    def _put(self, frame: np.ndarray) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(frame)

    async def frames(self) -> AsyncIterator[np.ndarray]:
        import sounddevice as sd

        loop = asyncio.get_running_loop()

        def callback(indata, frames, time_info, status):
            if status:
                log.debug("audio input status: %s", status)
            loop.call_soon_threadsafe(self._put, indata[:, 0].copy())

        with await self._open(sd, callback):
            while True:
                yield await self.queue.get()

    async def _open(self, sd, callback):
        """Open the device, waiting for it when it is not there yet (a USB microphone enumerates late)."""
        while True:
            try:
                return sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                                      blocksize=FRAME_SAMPLES, device=self.device, callback=callback)
            except (sd.PortAudioError, ValueError) as e:
                msg = f"waiting for audio input {self.device or 'default'}: {e}"
                log.warning(msg)
                notify(f"STATUS={msg}")
                await asyncio.sleep(self.retry_s)
                sd._terminate()  # PortAudio lists devices only when initialised
                sd._initialize()

    def flush(self) -> None:
        """Forget audio heard while the assistant was busy or speaking (it would hear itself)."""
        while not self.queue.empty():
            self.queue.get_nowait()


class LoopSource:
    """A WAV file (or silence) played over and over at the speed of a microphone: the service's input on
    a machine without a sound card, e.g. `audio.input_device = "file:/path/to/some.wav"`."""

    realtime = True

    def __init__(self, path: str | Path | None = None, seconds: float = 1.0):
        pcm = load_pcm16k(path) if path else np.zeros(int(seconds * SAMPLE_RATE), np.int16)
        pad = (-len(pcm)) % FRAME_SAMPLES
        self.pcm = np.concatenate([pcm.astype(np.int16), np.zeros(pad, np.int16)])

    async def frames(self) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            for i in range(0, len(self.pcm), FRAME_SAMPLES):
                due += FRAME_SAMPLES / SAMPLE_RATE
                await asyncio.sleep(max(0.0, due - loop.time()))
                yield self.pcm[i:i + FRAME_SAMPLES]
            due = max(due, loop.time() - 1.0)  # a slow consumer does not earn a burst of catch-up frames

    def flush(self) -> None:
        pass


class NullSink:
    """Replies are synthesised and dropped: a box without a speaker still acts on what it hears."""

    rate = None

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        pass

    async def end_of_reply(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_source(spec: str):
    """`audio.input_device`: empty (the default microphone), a device name or index, `file:PATH` or
    `silence`."""
    if spec.startswith("file:"):
        return LoopSource(spec.removeprefix("file:"))
    if spec == "silence":
        return LoopSource()
    return MicSource(spec)


def open_sink(spec: str):
    """`audio.output_device`: empty (the default speaker), a device name or index, or `none`."""
    return NullSink() if spec == "none" else SpeakerSink(spec)


def has_microphone() -> bool:
    try:
        import sounddevice as sd

        return any(d["max_input_channels"] > 0 for d in sd.query_devices())
    except Exception:  # no PortAudio, no devices: there is no microphone to use
        return False


class MemorySink:
    """Keeps every spoken reply in memory (the benchmark and the tests listen to it). `paced`: each play
    takes as long as the audio lasts, like a speaker, so the box can be interrupted mid-reply; what a
    stop cut off is not kept."""

    SLICE_S = 0.05

    def __init__(self, paced: bool = False):
        self.rate: int | None = None
        self.chunks: list[np.ndarray] = []
        self.paced = paced
        self.stopping = False

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        if self.rate not in (None, rate):
            raise ValueError("all replies must share one sample rate")
        self.rate, self.stopping = rate, False
        if not self.paced:
            self.chunks.append(pcm)
            return
        step = int(rate * self.SLICE_S)
        for i in range(0, len(pcm), step):
            if self.stopping:
                pcm = pcm[:i]
                break
            await asyncio.sleep(self.SLICE_S)
        self.chunks.append(pcm)

    def stop(self) -> None:
        self.stopping = True

    async def end_of_reply(self) -> None:
        if self.rate:
            self.chunks.append(np.zeros(self.rate // 4, np.int16))

    def close(self) -> None:
        pass


class WavSink(MemorySink):
    """Collects every spoken reply, one after another, into one WAV file at the end."""

    def __init__(self, path: str | Path | None):
        super().__init__()
        self.path = path

    def close(self) -> None:
        if self.path and self.rate:
            write_wav(self.path, np.concatenate(self.chunks), self.rate)


class SpeakerSink:
    """The speaker through PortAudio; play() returns when the audio is queued, end_of_reply() when heard.
    Written a slice at a time, so stop() cuts a long reply within a slice."""

    SLICE_S = 0.1

    def __init__(self, device: str = ""):
        self.device = int(device) if device.isdigit() else (device or None)
        self.stream = None
        self.rate: int | None = None
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        import sounddevice as sd

        try:
            if self.stream is None or self.rate != rate:
                self.close()
                self.stream = sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=self.device)
                self.stream.start()
                self.rate = rate
            self.stopping = False
            step = int(rate * self.SLICE_S)
            for i in range(0, len(pcm), step):
                if self.stopping:
                    self.stream.abort()  # drops what PortAudio still holds, then starts again clean
                    self.stream.start()
                    break
                await asyncio.to_thread(self.stream.write, pcm[i:i + step].reshape(-1, 1))
        except (sd.PortAudioError, ValueError):
            self.close()  # the speaker went away (unplugged): the next reply opens it again
            raise

    async def end_of_reply(self) -> None:
        pass

    def close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as e:  # noqa: BLE001 - a device that is gone cannot be stopped cleanly
                log.debug("closing the speaker: %s", e)

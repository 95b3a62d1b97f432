"""Where frames come from (a WAV file or a microphone) and where replies go (a WAV file or a speaker).

The pipeline sees the same interface for both, so tests, benchmarks and the live box run the same code.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from ..sdnotify import notify
from ..types import FRAME_SAMPLES, SAMPLE_RATE
from .echo import EchoCanceller, make
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
    the oldest frame and counts it, so a slow consumer never blocks the audio callback.

    A microphone that stops mid-run (unplugged, its driver or sound server gone: PortAudio ends the stream,
    or it just goes quiet) is noticed within `stall_s`, said in the log and in systemd's STATUS=, and opened
    again as soon as it is back, without a restart. Meanwhile the source gives silence at the pace of a
    microphone, so the rest of the box goes on (timers ring, announcements are spoken)."""

    realtime = True

    retry_s = 2.0  # between two tries to open a device that is not there
    stall_s = 2.0  # a device that gave no frame for this long has stopped (frames come every 80 ms)

    def __init__(self, device: str = "", max_frames: int = 64, echo: EchoCanceller | None = None):
        """`echo`: takes the speaker's sound out of every frame (echo.py), on a thread of its own."""
        self.name = device or "default"
        self.echo = echo
        self.echo_off: str | None = None  # why echo cancellation, asked for, is not used
        self.device = int(device) if device.isdigit() else (device or None)
        self.queue: asyncio.Queue[np.ndarray] = asyncio.Queue(max_frames)
        self.dropped = 0  # frames the pipeline was too slow to take
        self.overflows = 0  # callbacks in which PortAudio said input was lost before it reached us
        self.reopened = 0  # times the device was opened again after it stopped
        self.missing: str | None = None  # why there is no audio now, while the device is waited for
        self.stream = None
        self.heard_at = 0.0  # when the device last gave a frame (monotonic, set on the audio thread)
        _users.add(self)

    busy = False  # a rescan may always close the microphone's stream: it is opened again at once

    def _put(self, frame: np.ndarray) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(frame)

    async def frames(self) -> AsyncIterator[np.ndarray]:
        import sounddevice as sd

        loop = asyncio.get_running_loop()

        def deliver(frame: np.ndarray) -> None:
            try:
                loop.call_soon_threadsafe(self._put, frame)
            except RuntimeError:  # the loop has closed: the process is ending
                pass

        def callback(indata, frames, time_info, status):
            self.heard_at = now = time.monotonic()
            if status and status.input_overflow:
                self.overflows += 1
            if self.echo is None:
                deliver(indata[:, 0].copy())
            else:  # captured no later than a frame ago: its reference errs early, never late (echo.py)
                self.echo.submit(indata[:, 0].copy(), now - frames / SAMPLE_RATE, deliver)

        if self.echo is not None:
            self.echo.start()

        try:
            await self._open(sd, callback)
            while True:
                try:  # not wait_for: on Python 3.11 it loses a cancel that comes as a frame does
                    async with asyncio.timeout(self.stall_s / 4):
                        frame = await self.queue.get()
                except TimeoutError:
                    if self.stream is None and self._try_open(sd, callback):
                        continue  # closed for a rescan of the devices (see rescan), and open again
                    if (why := self._stopped()) is None:
                        continue
                    self._lost(why)
                    async for frame in self._reopen(sd, callback):
                        yield frame
                    continue
                yield frame
        finally:
            self.release()

    def _stopped(self) -> str | None:
        """Why the stream no longer gives audio, or None while it does."""
        if self.stream is None:
            return "it could not be opened again"
        if not self.stream.active:
            return "PortAudio ended its stream"
        if (quiet := time.monotonic() - self.heard_at) > self.stall_s:
            return f"no audio from it for {quiet:.1f} s"
        return None

    def _lost(self, why: str) -> None:
        self.missing = why
        msg = f"audio input {self.name} stopped ({why}); opening it again when it is back"
        log.warning(msg)
        notify(f"STATUS={msg}")
        self.release()

    async def _reopen(self, sd, callback) -> AsyncIterator[np.ndarray]:
        """Silence at a microphone's pace, while the device is tried every `retry_s` until it opens."""
        loop = asyncio.get_running_loop()
        quiet = np.zeros(FRAME_SAMPLES, np.int16)
        while not self._try_open(sd, callback):
            due = loop.time()
            for _ in range(max(1, round(self.retry_s * SAMPLE_RATE / FRAME_SAMPLES))):
                due += FRAME_SAMPLES / SAMPLE_RATE
                await asyncio.sleep(max(0.0, due - loop.time()))
                yield quiet
        self.reopened += 1
        log.warning("audio input %s is back (opened again %d times since the start)", self.name, self.reopened)
        notify(f"STATUS=listening on {self.name}")

    async def _open(self, sd, callback) -> None:
        """Open the device at the start, waiting for it when it is not there yet (a USB microphone
        enumerates late); no frames meanwhile, so systemd hears READY=1 only once audio flows."""
        while not self._try_open(sd, callback):
            await asyncio.sleep(self.retry_s)

    def _try_open(self, sd, callback) -> bool:
        try:
            stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16", blocksize=FRAME_SAMPLES,
                                    device=self.device, callback=callback)
            self.heard_at = time.monotonic()  # a stall is counted from the start of the stream
            stream.start()
        except (sd.PortAudioError, ValueError) as e:
            msg = f"waiting for audio input {self.name}: {e}"
            if msg != self.missing:
                log.warning(msg)
                notify(f"STATUS={msg}")
            self.missing = msg
            rescan(sd)  # PortAudio lists devices only when initialised: a device plugged in since needs it
            return False
        self.stream, self.missing = stream, None
        return True

    def release(self) -> None:
        """Close the stream (the frames loop opens it again); for a rescan of the devices and at the end."""
        stream, self.stream = self.stream, None
        _close(stream, "the microphone")

    def flush(self) -> None:
        """Forget audio heard while the assistant was busy or speaking (it would hear itself)."""
        while not self.queue.empty():
            self.queue.get_nowait()

    def stats(self) -> dict:
        out = {"device": self.name, "dropped": self.dropped, "overflows": self.overflows,
               "reopened": self.reopened, "missing": self.missing}
        if self.echo is not None:
            out["echo_cancel"] = self.echo.stats()
        elif self.echo_off is not None:
            out["echo_cancel"] = {"off": self.echo_off}
        return out


def cancel_echo(source, sink, noise_suppression: bool = False, auto_gain: bool = False,
                extra_delay_ms: int = 0) -> EchoCanceller | None:
    """Echo cancellation between a live microphone and the speaker the box plays to (only those: a WAV
    file has no echo, and a sink that is not the room's speaker gives no reference). Said once when it
    cannot run; the box then listens without it."""
    if not isinstance(source, MicSource) or not isinstance(sink, SpeakerSink):
        return None
    canceller, why = make(noise_suppression, auto_gain, extra_delay_ms)
    if canceller is None:
        source.echo_off = f"the canceller cannot run ({why})"
        log.warning("echo cancellation is off: %s; the box hears itself while it speaks", source.echo_off)
        return None
    source.echo = sink.echo = canceller
    return canceller


# Everything holding a PortAudio stream (microphones and speakers), for a rescan of the devices.
_users: weakref.WeakSet = weakref.WeakSet()


def rescan(sd, by=None) -> bool:
    """Initialise PortAudio again, so that it lists the devices plugged in since it was. That ends every
    stream, so each user's stream is closed first (its owner opens it again); while a speaker other than
    the one asking (`by`) is playing, nothing is done (False)."""
    if any(u.busy for u in _users if u is not by):
        return False
    for u in list(_users):
        u.release()
    sd._terminate()
    sd._initialize()
    return True


def _close(stream, what: str, drain: bool = False) -> None:
    """`drain`: let what is queued play out first (a speaker at the end); else dropped at once."""
    if stream is None:
        return
    try:
        if drain:
            stream.stop()
        stream.close()
    except Exception as e:  # noqa: BLE001 - a device that is gone cannot be stopped cleanly
        log.debug("closing %s: %s", what, e)


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
    Written a slice at a time, so stop() cuts a long reply within a slice.

    A speaker that went away between two replies is opened again by the next one, which then plays; one
    that goes away mid-reply fails that reply (raised, so the turn says so), and the next opens it again."""

    SLICE_S = 0.1

    def __init__(self, device: str = ""):
        self.name = device or "default"
        self.device = int(device) if device.isdigit() else (device or None)
        self.stream = None
        self.rate: int | None = None
        self.stopping = False
        self.playing = False
        self.quiet_from = 0.0  # when what was queued has been heard (monotonic)
        self.failed = 0  # plays that failed because the device did
        self.reopened = 0  # times the device was opened again after it failed or went away
        self.missing: str | None = None  # why the last play failed, until one works again
        self.echo: EchoCanceller | None = None  # told what is played and when it is heard
        self._playback = None  # the echo canceller's view of this stream
        _users.add(self)

    GRACE_S = 1.0  # after the last sound, the next sentence of a reply may still be on its way

    @property
    def busy(self) -> bool:
        """Playing, or just played: PortAudio is not initialised again under it (see rescan)."""
        return self.playing or time.monotonic() < self.quiet_from + self.GRACE_S

    def stop(self) -> None:
        self.stopping = True

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        import sounddevice as sd

        self.playing = True
        try:
            await self._play(sd, pcm, rate)
        except (sd.PortAudioError, ValueError) as e:
            self.release()
            self.failed += 1
            if self.missing is None:
                log.warning("audio output %s failed: %s; the next reply opens it again", self.name, e)
            self.missing = str(e)
            raise
        finally:
            self.playing = False
            self.quiet_from = time.monotonic() + self.SLICE_S  # about when the last slice is heard

    async def _play(self, sd, pcm: np.ndarray, rate: int) -> None:
        if self.stream is not None and self.rate != rate:
            self.close()  # what the other rate still holds is played out first
        fresh = self.stream is None or not self.stream.active
        if fresh:
            self._open(sd, rate)
        self.stopping = False
        step = int(rate * self.SLICE_S)
        playback = self._echo_playback(rate)
        heard = playback.resampled(pcm) if playback else None
        for i in range(0, len(pcm), step):
            if self.stopping:
                self.stream.abort()  # drops what PortAudio still holds, then starts again clean
                if playback:
                    playback.dropped()
                self.stream.start()
                break
            if playback:
                playback.latency_s = self.stream.latency
                playback.wrote(heard, i, min(step, len(pcm) - i), time.monotonic())
            try:
                await asyncio.to_thread(self.stream.write, pcm[i:i + step].reshape(-1, 1))
            except sd.PortAudioError as e:
                if fresh:
                    raise
                # The stream was opened for an earlier reply and the device went away since: open it anew.
                log.info("audio output %s: its stream failed (%s); opening it again", self.name, e)
                fresh, self.missing = True, str(e)
                self._open(sd, rate)
                await asyncio.to_thread(self.stream.write, pcm[i:i + step].reshape(-1, 1))

    def _echo_playback(self, rate: int):
        if self.echo is None:
            return None
        if self._playback is None or self._playback.rate != rate:
            self._playback = self.echo.playback(rate)
        return self._playback

    def _open(self, sd, rate: int) -> None:
        self.release()
        try:
            stream = sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=self.device)
        except ValueError:  # not listed: plugged in after PortAudio was initialised?
            if not rescan(sd, by=self):
                raise
            stream = sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=self.device)
        try:
            stream.start()
        except sd.PortAudioError:
            _close(stream, "the speaker")
            raise
        if self.missing is not None:  # it had failed
            self.reopened += 1
            log.warning("audio output %s is back (opened again %d times since the start)", self.name,
                        self.reopened)
        self.stream, self.rate, self.missing = stream, rate, None

    async def end_of_reply(self) -> None:
        pass

    def release(self) -> None:
        stream, self.stream = self.stream, None
        _close(stream, "the speaker")

    def close(self) -> None:
        stream, self.stream = self.stream, None
        _close(stream, "the speaker", drain=True)

    def stats(self) -> dict:
        return {"device": self.name, "failed": self.failed, "reopened": self.reopened, "missing": self.missing}

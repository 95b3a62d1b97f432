"""Echo cancellation: what the box's speaker plays is taken out of what its microphone hears, so that the
wake word and "stop" are heard while it speaks, and its own voice never wakes it.

WebRTC's audio processing module (AEC3), through livekit's Python binding, runs in this process on 10 ms
frames at 16 kHz. The speaker sink tells the `Reference` what it plays and when it will be heard; each
microphone frame is paired with what was played when it was captured, fed as the reverse stream just
before the frame itself is processed. The pairing errs towards a reference that comes early (the canceller
cannot take out an echo that precedes its reference); its own delay estimation finds the rest.

Nothing here runs on PortAudio's callback thread or the event loop: the microphone's frames go through a
thread of their own. A canceller that fails is counted, said once, and bypassed: the raw frame goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from ..types import SAMPLE_RATE

log = logging.getLogger(__name__)
BLOCK = SAMPLE_RATE // 100  # the canceller's 10 ms
KEEP_S = 4.0  # how much of what was played is kept for the microphone's frames to find
GIVE_UP_AFTER = 50  # failures in a row after which the canceller is left out for good


class Heard(np.ndarray):
    """A cleaned microphone frame that keeps the frame as heard (`raw`) and what the speaker played that
    it was paired with (`played`, None when the canceller failed): the wake word listens to both while the
    box speaks (interrupt.py)."""

    raw: np.ndarray | None = None
    played: np.ndarray | None = None

    @classmethod
    def of(cls, cleaned: np.ndarray, raw: np.ndarray, played: np.ndarray | None) -> Heard:
        out = cleaned.view(cls)
        out.raw, out.played = raw, played
        return out


class Reference:
    """What the speaker played, at 16 kHz on the monotonic clock: segments of audio with the time their
    first sample is heard. Written from the event loop (the sink), read from the canceller's thread."""

    def __init__(self):
        self.segments: list[tuple[float, np.ndarray]] = []
        self.lock = threading.Lock()

    def played(self, pcm16k: np.ndarray, start: float) -> None:
        with self.lock:
            self.segments = [s for s in self.segments if s[0] + len(s[1]) / SAMPLE_RATE > start - KEEP_S]
            self.segments.append((start, pcm16k))

    def cut(self, at: float) -> None:
        """What was queued to play after `at` was dropped (a reply cut short): it is never heard."""
        with self.lock:
            kept = []
            for start, pcm in self.segments:
                if start < at:
                    kept.append((start, pcm[:max(0, round((at - start) * SAMPLE_RATE))]))
            self.segments = kept

    def take(self, start: float, n: int) -> np.ndarray:
        """The n samples heard from `start` on, silence where nothing played."""
        out = np.zeros(n, np.int16)
        with self.lock:
            segments = list(self.segments)
        for seg_start, pcm in segments:
            offset = round((seg_start - start) * SAMPLE_RATE)  # where the segment begins in `out`
            lo, hi = max(0, offset), min(n, offset + len(pcm))
            if lo < hi:
                out[lo:hi] = pcm[lo - offset:hi - offset]
        return out


class Playback:
    """The speaker's side: when each slice written to PortAudio will be heard. A slice written while the
    previous one is still queued follows it; one written to an idle stream is heard `latency_s` later
    (PortAudio's output latency)."""

    def __init__(self, canceller: EchoCanceller, rate: int):
        self.canceller, self.rate = canceller, rate
        self.end = 0.0  # when what was written so far has been heard
        self.latency_s = 0.0

    def resampled(self, pcm: np.ndarray) -> np.ndarray | None:
        """A whole reply's audio at 16 kHz, once (slices resampled apart would click at their seams)."""
        return self.canceller.guard("resample", _to16k, pcm, self.rate)

    def wrote(self, heard: np.ndarray | None, at: int, n: int, written_at: float) -> None:
        """Samples [at, at + n) of a reply (`heard`: all of it at 16 kHz) are being written now."""
        start = max(self.end, written_at + self.latency_s)
        lo, hi = at * SAMPLE_RATE // self.rate, (at + n) * SAMPLE_RATE // self.rate
        self.end = start + (hi - lo) / SAMPLE_RATE
        if heard is not None and len(heard[lo:hi]):
            self.canceller.reference.played(heard[lo:hi], start)

    def dropped(self) -> None:
        """PortAudio dropped what it held (stop): what was on its way to the speaker may still be heard for
        its latency, so the reference is kept that long (one with no echo costs the canceller little; an
        echo with no reference goes through whole, into the command that cut the reply)."""
        now = time.monotonic()
        self.canceller.reference.cut(now + self.latency_s)
        self.end = now


def _to16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return pcm.astype(np.int16)
    import soxr

    return soxr.resample(pcm.astype(np.int16), rate, SAMPLE_RATE)


class EchoCanceller:
    """Cleans the microphone's frames of the speaker's sound on a thread of its own. `submit` never blocks:
    a frame that finds the thread too far behind is dropped and counted, like a slow pipeline's."""

    MAX_BEHIND = 16  # frames waiting (80 ms each)

    def __init__(self, apm, extra_delay_ms: int = 0):
        self.apm = apm
        self.reference = Reference()
        self.extra_delay_s = extra_delay_ms / 1000
        self.frames = 0  # 10 ms frames processed
        self.cpu_s = 0.0  # the thread's CPU time on them
        self.failed = 0  # frames that went on raw because the canceller failed on them
        self.dropped = 0  # microphone frames dropped because the thread was behind
        self.gave_up: str | None = None  # why it is no longer used
        self.played: np.ndarray | None = None  # the last frame's reference, once cleaned with it
        self._in_a_row = 0
        self._queue: queue.Queue = queue.Queue(self.MAX_BEHIND)
        self._thread: threading.Thread | None = None
        self._said: set[str] = set()

    # -- the microphone's side (PortAudio's callback thread, then this one's) ------------------------

    def submit(self, frame: np.ndarray, captured_at: float, deliver: Callable[[np.ndarray], None]) -> None:
        """A microphone frame whose first sample was captured at `captured_at` (monotonic); `deliver` gets
        it cleaned (or raw) on the canceller's thread."""
        if self.gave_up is not None or self._thread is None:
            deliver(frame)
            return
        try:
            self._queue.put_nowait((frame, captured_at, deliver))
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        """Its thread, before the microphone's stream opens (never started from PortAudio's callback)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="echo-cancel", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            frame, captured_at, deliver = item
            try:
                self.played = None
                cleaned = self.process(frame, captured_at)
                deliver(Heard.of(cleaned, frame, self.played))
            except Exception as e:  # noqa: BLE001 - whatever `deliver` meets, the thread goes on
                self._say("deliver", e)

    def process(self, frame: np.ndarray, captured_at: float) -> np.ndarray:
        """The frame with the echo taken out; the frame itself when the canceller fails."""
        if self.gave_up is not None:
            return frame
        t = time.thread_time()
        out = self.guard("process", self._process, frame, captured_at)
        self.cpu_s += time.thread_time() - t
        if out is None:
            self.failed += 1
            self._in_a_row += 1
            if self._in_a_row >= GIVE_UP_AFTER:
                self.gave_up = f"it failed on {GIVE_UP_AFTER} frames in a row"
                log.warning("echo cancellation left out: %s; the microphone is heard as it is", self.gave_up)
            return frame
        self._in_a_row = 0
        return out

    def _process(self, frame: np.ndarray, captured_at: float) -> np.ndarray:
        from livekit import rtc

        pcm = np.ascontiguousarray(frame, np.int16)
        out = np.empty(len(pcm) // BLOCK * BLOCK, np.int16)
        reference = self.reference.take(captured_at - self.extra_delay_s, len(pcm))
        for i in range(0, len(out), BLOCK):
            far = rtc.AudioFrame(reference[i:i + BLOCK].tobytes(), SAMPLE_RATE, 1, BLOCK)
            self.apm.process_reverse_stream(far)
            near = rtc.AudioFrame(pcm[i:i + BLOCK].tobytes(), SAMPLE_RATE, 1, BLOCK)
            self.apm.set_stream_delay_ms(0)  # the reference is paired with the frame already
            self.apm.process_stream(near)
            out[i:i + BLOCK] = np.frombuffer(near.data, np.int16)
            self.frames += 1
        self.played = reference
        return np.concatenate([out, pcm[len(out):]]) if len(out) < len(pcm) else out

    def guard(self, what: str, fn, *args):
        """fn(*args), or None when it raises: said once per kind of failure, never raised."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - a canceller's failure must not end a thread or a turn
            self._say(what, e)
            return None

    def _say(self, what: str, e: Exception) -> None:
        key = f"{what}:{type(e).__name__}"
        if key not in self._said:
            self._said.add(key)
            log.warning("echo cancellation: %s failed (%s: %s); going on without it meanwhile", what,
                        type(e).__name__, e)

    def playback(self, rate: int) -> Playback:
        return Playback(self, rate)

    def close(self) -> None:
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=1)
            except queue.Full:
                pass
            self._thread.join(2)
            self._thread = None

    def stats(self) -> dict:
        per_frame = round(1000 * self.cpu_s / self.frames, 3) if self.frames else None
        return {"frames": self.frames, "ms_per_frame": per_frame, "failed": self.failed, "dropped": self.dropped,
                "gave_up": self.gave_up}


def make(noise_suppression: bool = False, auto_gain: bool = False, extra_delay_ms: int = 0
         ) -> tuple[EchoCanceller | None, str | None]:
    """The canceller, or None and why not (livekit missing or failing to start: said by the caller)."""
    try:
        from livekit import rtc

        apm = rtc.AudioProcessingModule(echo_cancellation=True, noise_suppression=noise_suppression,
                                        high_pass_filter=True, auto_gain_control=auto_gain)
    except Exception as e:  # noqa: BLE001 - not installed, no wheel for this machine, its library fails
        return None, f"{type(e).__name__}: {e}"
    return EchoCanceller(apm, extra_delay_ms), None

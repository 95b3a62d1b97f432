"""Hearing ahead: what was said is recognised as soon as a pause begins, not only once the pause has
lasted long enough to end the command.

If the speaker goes on, that reading is dropped. If the pause lasts, the reading is ready when the
command ends, and the recogniser's time is saved. And if the reading is a whole command of this home that
no sentence of it goes on from ("turn on the kitchen light", not "turn on the kitchen light and the" or
"set the bedroom light to"), the command ends at once: the rest of the pause is saved too.

On a live microphone the reading runs beside the listening, which goes on; a file is read as fast as the
pipeline takes it, so there the reading is waited for and its time counted as audio that went by."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from .endpoint import WINDOW_S, Endpoint, Endpointer
from .understand.rescore import Heard

log = logging.getLogger(__name__)
# Two VAD windows of pause start a reading (frames come every 80 ms, so it begins 64-144 ms into the pause).
# A gap between words that long costs a reading nobody waits for; 0.1 s was 30-70 ms slower end of speech to
# publish on `assistant bench`, with the same accuracy and no command cut short.
READ_PAUSE_S = 2 * WINDOW_S

Hearing = tuple[str, Heard | None]  # the transcript, and the close listening's readings when it ran


@dataclass
class Reading:
    pause_s: float  # how long the pause had lasted when the reading began
    started: float = field(default_factory=time.perf_counter)
    task: asyncio.Future | None = None  # -> Hearing
    seconds: float = 0.0  # the recogniser's time
    whole: bool = False  # a whole command, to act on now (Understanding.whole)
    ready_s: float = 0.0  # a file: how long the pause has lasted when the reading is done


class HearingAhead:
    def __init__(self, hear: Callable[[np.ndarray], Awaitable[Hearing]],
                 whole: Callable[[Heard | None], bool], enabled: bool = True):
        """`hear`: the recogniser (and close listening) on audio; `whole(heard)`: whether what was heard
        is a complete command that cannot go on."""
        self.hear, self.whole, self.enabled = hear, whole, enabled
        self.reading: Reading | None = None
        # A file: the input's time (Endpointer.elapsed_s) when the recogniser is free again. One that was
        # dropped still holds it, as it would on a live source, so the next reading starts after it.
        self.free_at_s = 0.0

    def forget(self) -> None:
        self.reading = None
        self.free_at_s = 0.0  # the next command has an endpointer, and a clock, of its own

    def under_way(self) -> asyncio.Future | None:
        """The reading being made, if any: the conductor looks at it as soon as it is done."""
        return self.reading.task if self.reading is not None else None

    async def step(self, ep: Endpointer, realtime: bool) -> Endpoint | None:
        """After each frame the endpointer took: begins a reading when a pause begins, drops it when the
        speech goes on, and ends the command early when the reading is a whole command."""
        if not self.enabled or ep.speech_s < ep.min_speech_s:
            return None
        r = self.reading
        if r is not None and ep.since_speech_s < r.pause_s:  # the speaker went on
            r = self.reading = None
        if r is None and ep.since_speech_s >= READ_PAUSE_S:
            r = self.reading = Reading(ep.since_speech_s)
            r.task = asyncio.ensure_future(self._read(r, ep.audio()))
            if not realtime:  # a file: the reading's time is counted as audio that goes by meanwhile
                await asyncio.wait([r.task])
                self.free_at_s = max(ep.elapsed_s, self.free_at_s) + r.seconds
                r.ready_s = r.pause_s + self.free_at_s - ep.elapsed_s
        if r is None or not r.task.done() or r.task.exception() or not r.whole:
            return None
        if realtime:  # the conductor looks as soon as the reading is done (Frames.until)
            return ep.end_early(r.pause_s + time.perf_counter() - r.started)
        if ep.since_speech_s < r.ready_s:
            return None  # the audio that went by while it was read is still to be heard: the speaker may go on
        return ep.end_early(r.ready_s)

    async def _read(self, r: Reading, audio: np.ndarray) -> Hearing:
        """Fills in its own reading: by the time it is done, a newer one may have replaced it."""
        t = time.perf_counter()
        text, heard = await self.hear(audio)
        r.seconds = time.perf_counter() - t
        r.whole = self.whole(heard)
        return text, heard

    async def at_end(self, end: Endpoint, realtime: bool) -> tuple[Hearing, float] | None:
        """The reading of the command that just ended, and the recogniser's time, when one covers all of its
        speech (waited for if still under way); None: recognise it now."""
        r, self.reading = self.reading, None
        if r is None:
            return None
        try:
            hearing = await r.task
        except Exception as e:  # noqa: BLE001 - the turn recognises the audio itself and reports what fails
            log.warning("reading ahead failed, recognising again: %s: %s", type(e).__name__, e)
            return None
        if not realtime and end.reason != "early":  # the reading ran while the pause went by
            end.hangover_s = max(end.hangover_s, r.ready_s)
        return hearing, r.seconds

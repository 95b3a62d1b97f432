"""Listening while the box speaks or rings: the wake word barges in (a new command starts at once) and a
short "stop" (whatever this home's grammar reads as never mind) cuts the sound, both without waiting for
the reply to end.

Without echo cancellation the microphone hears the box too, so what is heard is compared with what is
being played: a "stop" whose words are all in the reply is the box's own voice, and so is the wake word
while the reply itself says it."""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from .endpoint import Endpointer
from .understand.fuzzy import words

STOP_MAX_S = 2.0  # longer speech is not a stop command: the room, or the reply heard back
WINDOW_S = 30.0  # frames kept while waiting for speech, then started afresh
STOP_PAUSE_S = 0.3  # a stop is short and said once: a short pause ends it
STOP_HINT = "Stop."  # primes the recogniser for the one short sentence it waits for


class Cut(StrEnum):
    WAKE = "wake"  # the wake word: a new command follows
    STOP = "stop"  # stop, cancel, never mind: silence


class Interrupter:
    def __init__(self, ears, asr, workers, wake_threshold: float, vad_threshold: float, stops,
                 phrases: dict[str, str]):
        """`ears`: the conductor's wake words and VAD (idle during a reply); `stops(text)`: whether the
        home's grammar reads the text as a stop; `phrases`: what is said for each wake word, to tell
        when the reply itself says one."""
        self.ears, self.asr, self.workers = ears, asr, workers
        self.wake_threshold, self.vad_threshold = wake_threshold, vad_threshold
        self.stops = stops
        self.phrases = {name: set(words(phrase)) for name, phrase in phrases.items()}
        self.ep: Endpointer | None = None
        self.woke_by: tuple[str, float] = ("", 0.0)  # the wake word that cut the sound last, and its score

    def start(self) -> None:
        self.ears.wake.reset()
        self.ears.vad.reset()
        self.ep = self._endpointer()

    def _endpointer(self) -> Endpointer:
        return Endpointer(threshold=self.vad_threshold, silence_s=STOP_PAUSE_S, start_timeout_s=WINDOW_S,
                          max_s=WINDOW_S)

    async def hear(self, frame: np.ndarray, saying: str) -> Cut | None:
        """One microphone frame while the box plays `saying` (empty for a ring): a reason to stop, or None."""
        word, score = await self.workers.run("listen", self.ears.wake_score, frame)
        said_by_the_reply = (own := self.phrases.get(word)) and own <= set(words(saying))
        if score >= self.wake_threshold and not said_by_the_reply:
            self.woke_by = (word, score)
            return Cut.WAKE
        end = self.ep.feed(frame, await self.workers.run("listen", self.ears.vad.probabilities, frame))
        if end is None:
            return None
        speech_s, self.ep = self.ep.speech_s, self._endpointer()
        if end.reason != "pause" or speech_s > STOP_MAX_S:  # too long for a stop
            return None
        text = await self.workers.run("asr", self.asr.transcribe, end.audio, STOP_HINT)
        heard = set(words(text))
        if heard and self.stops(text) and not heard <= set(words(saying)):
            return Cut.STOP
        return None

"""Listening while the box speaks or rings: the wake word barges in (a new command starts at once) and a
short "stop" (whatever this home's grammar reads as never mind) cuts the sound, both without waiting for
the reply to end.

Without echo cancellation the microphone hears the box too, so what is heard is compared with what is
being played: a "stop" whose words are all in the reply is the box's own voice, and so is the wake word
while the reply itself says it.

With echo cancellation (audio/echo.py) the wake word also listens to the microphone as heard (raw): the
canceller's suppressor pulls a user's voice down with the echo while a louder reply plays (double talk),
far enough that the wake word misses it in the cleaned audio. The raw audio also holds the box's own voice,
so a wake word heard there is checked against what the speaker played (the canceller's reference, paired
with each frame, of the last seconds): it counts unless the box's own sound said one too. The check runs
only then, so the raw audio costs one wake word model while the box speaks. While the reply says a word of
a wake phrase, the raw audio is not listened to at all (its echo can score where its clean sound did not)."""

from __future__ import annotations

import logging
import time
from collections import deque
from enum import StrEnum

import numpy as np

from .endpoint import Endpointer
from .types import FRAME_SAMPLES
from .understand.fuzzy import words

log = logging.getLogger(__name__)
STOP_MAX_S = 2.0  # longer speech is not a stop command: the room, or the reply heard back
WINDOW_S = 30.0  # frames kept while waiting for speech, then started afresh
STOP_PAUSE_S = 0.3  # a stop is short and said once: a short pause ends it
STOP_HINT = "Stop."  # primes the recogniser for the one short sentence it waits for
OWN_FRAMES = 37  # 3 s of what the speaker played: the wake word's model warms up on the first of them
QUIET = np.zeros(FRAME_SAMPLES, np.int16)  # before the reply began: silence, so the check warms up at its start too


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
        self.raw_wake = self.own_wake = None  # over the raw audio and the speaker's, made when first needed
        self.raw_cpu_s, self.raw_frames = 0.0, 0  # their cost
        self.played: deque[np.ndarray] = deque(maxlen=OWN_FRAMES)  # what the speaker played, frame by frame
        self.own_for = 0  # frames the raw audio's wake word is still the box's own, once found to be
        self.own_found = 0  # wake words in the raw audio that the speaker's sound had said

    def start(self) -> None:
        self.ears.wake.reset()
        self.ears.vad.reset()
        for model in (self.raw_wake, self.own_wake):
            if model is not None:
                model.reset()
        self.played.clear()
        self.own_for = 0
        self.ep = self._endpointer()

    def _raw_score(self, raw: np.ndarray, played: np.ndarray) -> tuple[str, float]:
        """The wake word scoring highest on the raw frame, and its score; 0 when the speaker's own sound
        (`played`, paired with the frame) said one too. On the listen worker."""
        t = time.process_time()
        if self.raw_wake is None:
            self.raw_wake, self.own_wake = self.ears.wake.twin(), self.ears.wake.twin()
        scores = self.raw_wake.scores(raw)
        self.played.append(played)
        word = max(scores, key=scores.__getitem__)
        self.own_for = max(0, self.own_for - 1)
        if scores[word] >= self.wake_threshold and not self.own_for:
            self.own_wake.reset()
            before = [QUIET] * (OWN_FRAMES - len(self.played))
            own = max(max(self.own_wake.scores(f).values()) for f in [*before, *self.played])
            log.info("the wake word in the raw audio (%.2f); in what the speaker played %.2f", scores[word], own)
            if own >= self.wake_threshold:
                self.own_for = OWN_FRAMES  # the rest of this wake word is the box's too
                self.own_found += 1
        self.raw_cpu_s += time.process_time() - t
        self.raw_frames += 1
        return (word, 0.0) if self.own_for else (word, scores[word])

    def _endpointer(self) -> Endpointer:
        return Endpointer(threshold=self.vad_threshold, silence_s=STOP_PAUSE_S, start_timeout_s=WINDOW_S,
                          max_s=WINDOW_S)

    async def hear(self, frame: np.ndarray, saying: str) -> Cut | None:
        """One microphone frame while the box plays `saying` (empty for a ring): a reason to stop, or None."""
        word, score = await self.workers.run("listen", self.ears.wake_score, frame)
        raw, played = getattr(frame, "raw", None), getattr(frame, "played", None)
        # the echo of a reply saying a word of a wake phrase ("Jarvis is listening") woke the raw audio's
        # model while the clean sound of it scored 0.25: then only the cleaned audio is listened to
        says_a_part = any(own & set(words(saying)) for own in self.phrases.values())
        if raw is not None and played is not None and hasattr(self.ears.wake, "twin") and not says_a_part:
            raw_word, raw_score = await self.workers.run("listen", self._raw_score, raw, played)
            if raw_score > score:
                word, score = raw_word, raw_score
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
            log.info("stop heard while the box speaks: %r", text)
            return Cut.STOP
        return None


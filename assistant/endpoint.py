"""Endpointing: after the wake word, collect the command until the speaker pauses.

Pure logic over speech probabilities, so it is tested without a model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .types import SAMPLE_RATE

WINDOW_S = 512 / SAMPLE_RATE  # one VAD window
MAX_RISE_S = 1.0  # how far before the threshold was crossed speech may be found to begin (noise hovers)


@dataclass
class Endpoint:
    audio: np.ndarray
    reason: str  # "pause" | "early" | "max_length" | "no_speech" | "end_of_input"
    hangover_s: float  # audio between the last speech and the decision: latency the user waits for


@dataclass
class Endpointer:
    threshold: float = 0.5
    silence_s: float = 0.6
    start_timeout_s: float = 4.0
    max_s: float = 10.0
    min_speech_s: float = 0.15  # shorter bursts (a click, a cough) do not start a command
    lead_in_s: float = 0.3
    rise: float = 0.1  # speech began where its probability rose above this, before it crossed the threshold
    frames: list[np.ndarray] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # every window's speech probability, so far
    elapsed_s: float = 0.0
    speech_s: float = 0.0
    since_speech_s: float = 0.0
    onset_s: float | None = None  # where speech began, to cut the silence before it

    def feed(self, frame: np.ndarray, probs: list[float]) -> Endpoint | None:
        self.frames.append(frame)
        for p in probs:
            self.elapsed_s += WINDOW_S
            self.probs.append(p)
            if p >= self.threshold:
                if self.onset_s is None:
                    self.onset_s = self._rise() * WINDOW_S
                self.speech_s += WINDOW_S
                self.since_speech_s = 0.0
            elif p < self.threshold - 0.15 or self.speech_s == 0:  # hysteresis: a dip is not a pause
                self.since_speech_s += WINDOW_S
        started = self.speech_s >= self.min_speech_s
        if started and self.since_speech_s >= self.silence_s:
            return self._end("pause")
        if self.elapsed_s >= self.max_s:
            return self._end("max_length" if started else "no_speech")
        if not started and self.elapsed_s >= self.start_timeout_s:
            return self._end("no_speech")
        return None

    def _rise(self) -> int:
        """The window where the speech that just crossed the threshold began: a soft first word ("I'd
        like ...", "can I get ...") stays under the threshold for a word or two, above the silence."""
        i = last = len(self.probs) - 1
        while i > 0 and self.probs[i - 1] >= self.rise and (last - i) * WINDOW_S < MAX_RISE_S:
            i -= 1
        return i

    def finish(self) -> Endpoint | None:
        """The input ended (a file): what was said so far is the command, if anything was."""
        return self._end("end_of_input") if self.speech_s >= self.min_speech_s else None

    def audio(self) -> np.ndarray:
        """What was heard so far, from just before the speech began."""
        audio = np.concatenate(self.frames)
        if self.onset_s is not None:  # keep a little lead-in: the onset detector is late by a window or two
            audio = audio[max(0, int((self.onset_s - self.lead_in_s) * SAMPLE_RATE)):]
        return audio

    def end_early(self, hangover_s: float) -> Endpoint:
        """The pause has not lasted `silence_s`, but what was said is known to be a whole command."""
        return Endpoint(self.audio(), "early", hangover_s)

    def _end(self, reason: str) -> Endpoint:
        return Endpoint(self.audio(), reason, self.since_speech_s if reason == "pause" else 0.0)

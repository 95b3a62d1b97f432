"""What the conductor needs from each kind of engine: small Protocols the backends satisfy.

An optional capability is declared by a class attribute (`Asr.nbest`), so a caller asks the engine what
it can do instead of probing for methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np


class WakeWord(Protocol):
    names: list[str]  # the wake words it listens for, all at once

    def scores(self, frame: np.ndarray) -> dict[str, float]:
        """Feed one 80 ms frame (1280 int16 samples); each wake word's score for it, 0..1."""

    def reset(self) -> None:
        """Forget the audio heard so far, so the same utterance does not fire again."""


class Vad(Protocol):
    def probabilities(self, frame: np.ndarray) -> list[float]:
        """Speech probability for each complete window in the audio fed so far."""

    def reset(self) -> None: ...


@dataclass(frozen=True)
class Hypothesis:
    text: str
    logprob: float  # average log-probability per token (end of text included)


class Asr(Protocol):
    nbest: ClassVar[bool]  # True: it is an NBestAsr too

    def transcribe(self, pcm: np.ndarray, hotwords: str | None = None) -> str: ...


class NBestAsr(Asr, Protocol):
    """A recogniser that gives several readings of the audio and says how well given sentences fit it,
    both from one encoding of the audio."""

    first_shorter: bool  # encode(first=True) is cheaper than the full encoding, and less sure

    def encode(self, pcm: np.ndarray, first: bool = False) -> object:
        """The audio's encoding (`first`: for a first, quick reading)."""

    def hypotheses(self, encoded: object, hotwords: str | None = None, n: int = 4) -> list[Hypothesis]:
        """The n best transcripts, best first."""

    def score(self, encoded: object, texts: list[str], hotwords: str | None = None) -> list[float]:
        """How well each sentence fits the audio, as an average log-probability per token."""

    def prior(self, texts: list[str]) -> list[float]:
        """How likely each sentence is with nothing said, scored as `score` scores it."""

    def token_ids(self, text: str) -> list[int]:
        """The tokens the decoder writes a text with."""


class Tts(Protocol):
    sample_rate: int

    def sentences(self, text: str) -> Iterator[np.ndarray]:
        """int16 audio, a sentence at a time, so the first one can play while the rest is made."""


class SteerableAsr(NBestAsr, Protocol):
    """A recogniser whose decoding the caller can steer, choosing every next token (understand/steered.py)."""

    steers: bool  # False once its model proved unreadable for it

    def steerable(self) -> object | None:
        """Its steerable decoder, loaded if need be; None if it cannot be."""

    def steering(self, encoded: object) -> object:
        """A decoding of the audio: `logprobs` of each kept sentence's next token, `advance(rows, tokens)`,
        `eot`, `max_tokens`, `text(tokens)`."""

    def with_ends(self, encoded: object, texts: list[str], fits: list[float]) -> list[float]:
        """`score`'s fits with the end of text after each sentence counted."""

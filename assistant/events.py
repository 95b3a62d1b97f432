"""Events every stage emits: for the console, MQTT status topics and the benchmark. Listeners only read."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .types import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass
class TurnMetrics:
    """Timings of one command, seconds. Wall-clock except where it says audio."""

    wake_score: float = 0.0
    wake_audio_s: float = 0.0  # position in the input where the wake word fired
    agree_s: float | None = None  # from the wake word to the boxes' agreement on who answers
    agree_wait_s: float = 0.0  # of that, how long the command, taken in, waited for it: the turn's delay
    endpoint_reason: str = ""
    hangover_s: float = 0.0  # audio: end of speech to endpoint decision
    utterance_s: float = 0.0  # audio length handed to ASR
    asr_s: float = 0.0
    understand_s: float = 0.0
    publish_s: float | None = None
    tts_first_audio_s: float | None = None
    tts_total_s: float = 0.0
    reply_audio_s: float = 0.0
    # from the endpoint decision (add hangover_s for "from end of speech")
    to_publish_s: float | None = None
    to_first_audio_s: float | None = None

    def note_endpoint(self, end) -> None:
        """What the endpointer decided (an endpoint.Endpoint)."""
        self.endpoint_reason, self.hangover_s = end.reason, end.hangover_s
        self.utterance_s = len(end.audio) / SAMPLE_RATE

    @property
    def eos_to_publish_s(self) -> float | None:
        return None if self.to_publish_s is None else self.hangover_s + self.to_publish_s

    @property
    def eos_to_first_audio_s(self) -> float | None:
        return None if self.to_first_audio_s is None else self.hangover_s + self.to_first_audio_s


class Kind(StrEnum):
    """What happened, and the data that comes with it. A StrEnum, so `event.kind == "wake"` reads as well."""

    STATE = "state"  # state: idle | listening | thinking | speaking
    WAKE = "wake"  # word (which wake word: its manifest name or file stem), score, at_s (position in the input)
    ARBITRATION = "arbitration"  # won, winner (site), rank, winner_rank, boxes, waited_ms, why: which box answers
    TRANSCRIPT = "transcript"  # text, seconds (audio length)
    INTENT = "intent"  # intent: what will be carried out (or was asked about and confirmed)
    ASK = "ask"  # intent: asked back about; a "yes" in the next turn carries it out
    LLM = "llm"  # backend, model, seconds, error
    COMMAND = "command"  # topic, payload: one device message delivered
    ACTED = "acted"  # outcome: its commands were delivered
    OUTCOME = "outcome"  # outcome: the turn's result, acted on or not
    REPLY = "reply"  # text: what was said back
    TURN = "turn"  # metrics: the turn's TurnMetrics, at its end
    ERROR = "error"  # where (mqtt | llm), message
    MUTE = "mute"  # muted
    ANNOUNCEMENT = "announcement"  # text: said on request from the broker
    INTERRUPTED = "interrupted"  # by: wake | stop, heard while the box spoke or rang
    TIMER = "timer"  # event (started | updated | finished | cancelled), timer, timers (all of them)


@dataclass(frozen=True)
class Event:
    kind: Kind
    data: dict[str, Any] = field(default_factory=dict)


class EventBus:
    def __init__(self):
        self.listeners: list[Callable[[Event], None]] = []

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self.listeners.append(fn)

    def emit(self, kind: Kind, **data: Any) -> None:
        ev = Event(Kind(kind), data)
        for fn in self.listeners:
            try:
                fn(ev)
            except Exception:  # a broken listener must not stop the assistant
                log.exception("event listener failed on %s", kind)

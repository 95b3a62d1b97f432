"""Events every stage emits: for the console, MQTT status topics and the benchmark. Listeners only read."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .types import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass
class TurnMetrics:
    """Timings of one command, seconds. Wall-clock except where it says audio."""

    wake_score: float = 0.0
    wake_audio_s: float = 0.0  # position in the input where the wake word fired
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


@dataclass(frozen=True)
class Event:
    kind: str  # state | wake | transcript | intent | command | outcome | turn | error
    data: dict[str, Any] = field(default_factory=dict)


class EventBus:
    def __init__(self):
        self.listeners: list[Callable[[Event], None]] = []

    def subscribe(self, fn: Callable[[Event], None]) -> None:
        self.listeners.append(fn)

    def emit(self, kind: str, **data: Any) -> None:
        ev = Event(kind, data)
        for fn in self.listeners:
            try:
                fn(ev)
            except Exception:  # a broken listener must not stop the assistant
                log.exception("event listener failed on %s", kind)

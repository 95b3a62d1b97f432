"""Small value types that flow one way through the pipeline: frames, transcripts, intents, outcomes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SAMPLE_RATE = 16000
FRAME_SAMPLES = 1280  # 80 ms: the hop openWakeWord wants; VAD splits it into 512-sample windows


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float  # length of the audio it came from


class Source(StrEnum):
    """Where an intent came from: it decides how it is asked back and which handler carries it out."""

    TEMPLATE = "template"  # Home Assistant's sentences matched exactly
    FUZZY = "fuzzy"  # snapped onto the nearest sentence the home can say
    CUSTOM = "custom"  # the user's own intents
    LLM = "llm"  # the language model's reading of free words


@dataclass(frozen=True)
class Intent:
    """What the user wants, in terms of the home's registry (never MQTT topics)."""

    name: str  # e.g. HassTurnOn, HassTurnOff, HassLightSet
    text: str
    device_ids: tuple[str, ...] = ()  # explicit devices named
    area: str | None = None
    all_devices: bool = False  # "all the lights"
    domain: str = "light"
    brightness: int | None = None  # percent 0..100
    color: str | None = None  # colour name
    unknown_name: str | None = None  # a device or area the user named that the home does not have
    slots: dict[str, Any] = field(default_factory=dict)
    source: Source = Source.TEMPLATE
    confidence: float = 1.0  # 0..1; the conductor acts, asks back or ignores by it


@dataclass(frozen=True)
class Command:
    """One MQTT message to a device."""

    device_id: str
    topic: str
    payload: str
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True)
class Outcome:
    reply: str
    commands: tuple[Command, ...] = ()
    ok: bool = True
    intent: Intent | None = None
    speech: Iterator[str] | None = None  # a reply still being generated (LLM answers), instead of `reply`
    carries_intent: bool = False  # the commands are the intent's own messages (the user's intents)
    effect: Callable[[], None] | None = None  # done on the box itself when carried out (a timer started)


"""Discovery must never reach a device that is confirmed before acting (a lock, a cover, an alarm)
through one that is not: a discovered "garden light" whose command topic is the front-door lock's would
unlock it on "turn on the garden light", without asking.

The guard knows the topics that act on every confirmed device (configured or discovered, shown or
not) and the command topics of every shown discovered device, each under all its prefixes, so either
side is checked against the other in the time of a topic's depth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import dialects

if TYPE_CHECKING:
    from .registry import Device


def _prefixes(topic: str) -> list[str]:
    levels = topic.split("/")
    return ["/".join(levels[:i]) for i in range(1, len(levels) + 1)]


class Guard:
    def __init__(self, confirm_domains):
        self.confirm_domains = frozenset(confirm_domains)
        self._protected: dict[str, dict[int, tuple[Device, bool]]] = {}  # topic -> {id(d): (d, under too)}
        self._commands: dict[str, dict[int, Device]] = {}  # prefix of a command topic -> {id(d): d}

    def confirmed(self, d: Device) -> bool:
        return d.domain in self.confirm_domains

    def protect(self, d: Device) -> list[Device]:
        """Guard a confirmed device; returns the tracked devices whose commands already reach it."""
        reaching = {}
        for topic, under in dialects.reach(d):
            self._protected.setdefault(topic, {})[id(d)] = (d, under)
            for other in self._commands.get(topic, {}).values():
                if under or topic in dialects.command_topics(other):
                    reaching[id(other)] = other
        return list(reaching.values())

    def unprotect(self, d: Device) -> None:
        for topic, _ in dialects.reach(d):
            _drop(self._protected, topic, id(d))

    def track(self, d: Device) -> None:
        for t in dialects.command_topics(d):
            for p in _prefixes(t):
                self._commands.setdefault(p, {})[id(d)] = d

    def untrack(self, d: Device) -> None:
        for t in dialects.command_topics(d):
            for p in _prefixes(t):
                _drop(self._commands, p, id(d))

    def reached_by(self, d: Device) -> Device | None:
        """The confirmed device that a command to d would act on, if any."""
        for t in dialects.command_topics(d):
            for p in _prefixes(t):
                for protected, under in self._protected.get(p, {}).values():
                    if under or p == t:
                        return protected
        return None


def _drop(index: dict[str, dict], topic: str, key: int) -> None:
    entries = index.get(topic)
    if entries is not None:
        entries.pop(key, None)
        if not entries:
            del index[topic]

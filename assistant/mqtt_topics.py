"""MQTT topic syntax, and a tally of what arrived from the broker and was dropped.

Any client on a home broker can publish, so every topic that comes from the broker or the config is
checked here before the assistant subscribes to it, publishes to it or builds one from it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

MAX_TOPIC_BYTES = 512  # far above any device's topic; MQTT allows 65535, a flood of long ones costs memory


def refused_by_brokers(ch: str) -> bool:
    """Characters MQTT says a topic should not hold (5.0, 1.5.4): mosquitto takes them for a malformed
    packet and drops the connection, and a filter with one, renewed at every reconnect, would keep the
    link from ever staying up."""
    cp = ord(ch)
    return cp < 0x20 or 0x7F <= cp <= 0x9F or 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE


def topic_problem(topic: object, *, part: bool = False) -> str | None:
    """Why `topic` cannot be published to or subscribed to as one exact topic, or None if it can.
    part: a piece that goes inside a topic (site, prefix, friendly name), where no level may be empty."""
    if not isinstance(topic, str):
        return "not a string"
    if not topic:
        return "empty"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "not UTF-8"
    if size > MAX_TOPIC_BYTES:
        return f"longer than {MAX_TOPIC_BYTES} bytes"
    if "\0" in topic:
        return "contains NUL"
    if any(refused_by_brokers(c) for c in topic):
        return "contains a control character or a Unicode noncharacter"
    if "+" in topic or "#" in topic:
        return "contains a wildcard (+ or #)"
    if part and "" in topic.split("/"):
        return "has an empty level"
    return None


def filter_problem(pattern: object) -> str | None:
    """Why `pattern` is not a valid subscription filter (wildcards allowed where MQTT allows them)."""
    levels = pattern.split("/") if isinstance(pattern, str) else []
    if any(level not in ("+", "#") and ("+" in level or "#" in level) for level in levels):
        return "a wildcard inside a level"
    if "#" in levels[:-1]:
        return "# is not the last level"
    return topic_problem(pattern.replace("+", "x").replace("#", "x") if levels else pattern)


class Rejections:
    """Messages from the broker that were dropped, counted by reason. Each (topic, reason) is logged once,
    so a flood does not flood the log; after `log_limit` distinct ones only the counts grow."""

    def __init__(self, logger: logging.Logger, log_limit: int = 1000):
        self.counts: Counter[str] = Counter()
        self._log = logger
        self._logged: set[tuple[str, str]] = set()
        self._log_limit = log_limit
        self._lock = threading.Lock()

    def add(self, topic: str, reason: str, detail: str = "") -> None:
        with self._lock:
            self.counts[reason] += 1
            key = (topic[:MAX_TOPIC_BYTES], reason)
            if key in self._logged or len(self._logged) > self._log_limit:
                return
            self._logged.add(key)
            if len(self._logged) > self._log_limit:
                self._log.warning("more rejected messages: from now on they are counted, not logged")
                return
        self._log.warning("ignored the message on %s: %s%s", topic[:200], reason, f" ({detail})" if detail else "")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common()) or "none"

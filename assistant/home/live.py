"""The home as the broker tells it: configured and discovered devices, kept up to date with their state.

Wires the registry, discovery and state tracking to the MQTT link; everything arrives on the MQTT thread.
"""

from __future__ import annotations

import threading
import time

from ..config import Config
from .discovery import Discovery
from .registry import Registry
from .state import HomeState


class Home:
    def __init__(self, cfg: Config):
        self.registry = Registry.from_config(cfg.device, cfg.customize)
        self.discovery = Discovery(cfg.discovery, self.registry)
        self.states = HomeState(self.registry)
        self.wait_s = cfg.discovery.wait_s
        self.link = None
        self._subscribed: set[str] = set()
        self._lock = threading.Lock()
        self._last_change = time.monotonic()

    def attach(self, link) -> None:
        self.link = link
        for topic in self.discovery.topics():
            link.subscribe(topic, self._on_announcement)
        self._follow_state_topics()

    def _on_announcement(self, topic: str, payload: str) -> None:
        self._last_change = time.monotonic()
        self.discovery.on_message(topic, payload)
        self._follow_state_topics()

    def _follow_state_topics(self) -> None:
        with self._lock:
            for topic in self.states.topics():
                if topic not in self._subscribed:
                    self._subscribed.add(topic)
                    self.link.subscribe(topic, self._on_state)

    def _on_state(self, topic: str, payload: str) -> None:
        self._last_change = time.monotonic()
        self.states.on_message(topic, payload)

    def settle(self, quiet_s: float = 0.25) -> None:
        """For a one-shot run: wait (at most discovery.wait_s) until retained announcements and states
        have stopped arriving."""
        if self.link is None or not self.link.connected:
            return
        deadline = time.monotonic() + self.wait_s
        start = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() - max(self._last_change, start) >= quiet_s:
                return
            time.sleep(0.05)

"""The home as the broker tells it: configured and discovered devices, kept up to date with their state.

Wires the registry, discovery and state tracking to the MQTT link; everything arrives on the MQTT thread.
What does not fit (a malformed announcement, a refused device, a state nobody can read) is dropped and
counted in the link's `rejected`, each (topic, reason) logged once.
"""

from __future__ import annotations

import time

from ..config import Config
from .discovery import Discovery, DiscoveryError
from .registry import Change, Registry
from .state import HomeState


class Home:
    def __init__(self, cfg: Config):
        self.registry = Registry.from_config(cfg.device, cfg.customize, cfg.understand.confirm_domains)
        self.discovery = Discovery(cfg.discovery, self.registry)
        self.states = HomeState(self.registry)
        self.wait_s = cfg.discovery.wait_s
        self.link = None
        self._last_change = time.monotonic()

    def attach(self, link) -> None:
        self.link = link
        for topic in self.discovery.topics():
            link.subscribe(topic, self._on_announcement)
        for topic in self.states.topics():
            link.subscribe(topic, self._on_state)

    def _on_announcement(self, topic: str, payload: str) -> None:
        self._last_change = time.monotonic()
        try:
            change = self.discovery.on_message(topic, payload)
        except DiscoveryError as e:
            self.link.rejected.add(topic, e.reason, e.detail)
            return
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            self.link.rejected.add(topic, "malformed announcement", str(e))
            return
        self._apply(change)

    def _apply(self, change: Change) -> None:
        for device, reason, detail in change.refused:
            self.link.rejected.add(device.source, reason, detail)
        new, gone = self.states.follow(change.added, change.removed)
        for topic in gone:
            self.link.unsubscribe(topic, self._on_state)
        for topic in new:
            self.link.subscribe(topic, self._on_state)

    def _on_state(self, topic: str, payload: str) -> None:
        self._last_change = time.monotonic()
        for problem in self.states.on_message(topic, payload):
            self.link.rejected.add(topic, "state not understood", problem)

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

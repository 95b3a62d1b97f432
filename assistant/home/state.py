"""The last known state and availability of every device, from the topics the devices report on."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from . import dialects
from .registry import Device, Registry


@dataclass(frozen=True)
class DeviceState:
    on: bool | None = None  # None: never heard
    brightness: int | None = None  # percent
    available: bool | None = None


class HomeState:
    def __init__(self, registry: Registry):
        self.registry = registry
        self.states: dict[str, DeviceState] = {}
        self._index: dict[str, dict[str, str]] = {}  # topic -> {device id: kind}, of the shown devices
        self._lock = threading.Lock()
        self.follow(list(registry.devices.values()), [])

    def topics(self) -> list[str]:
        with self._lock:
            return list(self._index)

    def follow(self, added: list[Device], removed: list[Device]) -> tuple[list[str], list[str]]:
        """Index the state topics of devices now shown, forget those of devices no longer shown.
        Returns the topics to start following and those nobody reports on any more."""
        new, gone = [], []
        with self._lock:
            for d in removed:
                for t in dialects.state_topics(d):
                    ids = self._index.get(t, {})
                    ids.pop(d.id, None)
                    if not ids and self._index.pop(t, None) is not None:
                        gone.append(t)
            for d in added:
                for t, kind in dialects.state_topics(d).items():
                    if t not in self._index:
                        self._index[t] = {}
                        new.append(t)
                    self._index[t][d.id] = kind
            for device_id in {d.id for d in removed} - {d.id for d in added}:
                self.states.pop(device_id, None)  # gone for good: announcements must not grow it forever
        return [t for t in new if t not in gone], [t for t in gone if t not in new]

    def on_message(self, topic: str, payload: str) -> list[str]:
        """Take in a state message; returns what in it did not fit its devices."""
        with self._lock:
            entries = list(self._index.get(topic, {}).items())
        problems = []
        for device_id, kind in entries:
            device = self.registry.get(device_id)
            if device is None:
                continue
            try:
                change = dialects.parse(device, kind, payload)
            except (ValueError, TypeError, AttributeError, RecursionError) as e:
                problems.append(str(e))
                continue
            with self._lock:
                self.states[device_id] = replace(self.states.get(device_id, DeviceState()), **change)
        return problems

    def get(self, device_id: str) -> DeviceState:
        return self.states.get(device_id, DeviceState())

"""The last known state and availability of every device, from the topics the devices report on."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from . import dialects
from .registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceState:
    on: bool | None = None  # None: never heard
    brightness: int | None = None  # percent
    available: bool | None = None


class HomeState:
    def __init__(self, registry: Registry):
        self.registry = registry
        self.states: dict[str, DeviceState] = {}
        self._index: dict[str, list[tuple[str, str]]] = {}
        self._version = -1
        self._lock = threading.Lock()

    def topics(self) -> dict[str, list[tuple[str, str]]]:
        """topic -> [(device id, kind)] for the registry as it is now."""
        with self._lock:
            if self._version != self.registry.version:
                index: dict[str, list[tuple[str, str]]] = {}
                for d in list(self.registry.devices.values()):
                    for t, kind in dialects.state_topics(d).items():
                        index.setdefault(t, []).append((d.id, kind))
                self._index, self._version = index, self.registry.version
            return self._index

    def on_message(self, topic: str, payload: str) -> None:
        for device_id, kind in self.topics().get(topic, []):
            device = self.registry.get(device_id)
            if device is None:
                continue
            try:
                change = dialects.parse(device, kind, payload)
            except (ValueError, TypeError, AttributeError) as e:
                log.warning("ignored the state message on %s: %s", topic, e)
                continue
            with self._lock:
                self.states[device_id] = replace(self.states.get(device_id, DeviceState()), **change)

    def get(self, device_id: str) -> DeviceState:
        return self.states.get(device_id, DeviceState())

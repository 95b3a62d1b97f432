"""The devices this home has. The only place device names, areas and MQTT addresses come from.

Devices come from the config and from discovery (Home Assistant, Zigbee2MQTT). The config wins: a
discovered device whose id or name a configured device already has is left out, and `[[customize]]`
entries add names and areas to discovered ones. Discovery runs on the MQTT thread while the pipeline
reads, so the merged view is rebuilt under a lock and swapped in whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from ..config import CustomizeConfig, DeviceConfig


def normalize(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    aliases: tuple[str, ...]
    area: str
    domain: str
    dialect: str
    address: dict  # dialect-specific topics and scales, see dialects.py
    color: bool = True
    members: tuple[str, ...] = ()  # a Zigbee2MQTT group: the ids of its devices
    source: str = "config"  # config, or the discovery topic that announced it

    @property
    def spoken_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def from_config(d: DeviceConfig) -> Device:
    address = {k: getattr(d, k) for k in (
        "friendly_name", "base_topic", "command_topic", "state_topic", "availability_topic",
        "brightness_command_topic", "brightness_state_topic", "payload_on", "payload_off",
        "brightness_scale", "topic")}
    return Device(id=d.id, name=normalize(d.name), aliases=tuple(normalize(a) for a in d.aliases),
                  area=normalize(d.area), domain=d.domain, dialect=d.dialect, color=d.color, address=address)


class Registry:
    def __init__(self, devices: list[Device], customize: list[CustomizeConfig] = ()):
        self.configured = {d.id: d for d in devices}
        self.customize = list(customize)
        self.discovered: dict[str, list[Device]] = {}  # by the source that announced them
        self.version = 0  # bumped on every change, so readers know to refresh
        self._lock = threading.Lock()
        self.devices: dict[str, Device] = dict(self.configured)

    @classmethod
    def from_config(cls, devices: list[DeviceConfig], customize: list[CustomizeConfig] = ()) -> "Registry":
        return cls([from_config(d) for d in devices], customize)

    # -- discovery ----------------------------------------------------------------------------------

    def set_discovered(self, source: str, devices: list[Device]) -> None:
        """Replace what one source announced (an empty list removes it)."""
        with self._lock:
            if devices:
                self.discovered[source] = devices
            elif self.discovered.pop(source, None) is None:
                return
            self._merge()

    def _merge(self) -> None:
        merged = dict(self.configured)
        taken = {n for d in merged.values() for n in d.spoken_names}
        for devices in self.discovered.values():
            for d in devices:
                d = self._customized(d)
                if d.id in merged or any(n in taken for n in d.spoken_names):
                    continue  # the config (or an earlier announcement) wins
                merged[d.id] = d
                taken.update(d.spoken_names)
        self.devices = merged
        self.version += 1

    def _customized(self, d: Device) -> Device:
        for c in self.customize:
            if normalize(c.match) in (d.id, d.name, normalize(d.id)):
                return replace(d, name=normalize(c.name) or d.name, area=normalize(c.area) or d.area,
                               aliases=d.aliases + tuple(normalize(a) for a in c.aliases))
        return d

    # -- lookups --------------------------------------------------------------------------------------

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    def named(self, name: str) -> Device | None:
        n = normalize(name)
        return next((d for d in self.devices.values() if n in d.spoken_names or n == d.id), None)

    @property
    def areas(self) -> list[str]:
        return sorted({d.area for d in self.devices.values() if d.area})

    def in_area(self, area: str, domain: str | None = None) -> list[Device]:
        return [d for d in self.devices.values()
                if d.area == normalize(area) and domain in (None, d.domain) and not d.members]

    def of_domain(self, domain: str) -> list[Device]:
        return [d for d in self.devices.values() if d.domain == domain and not d.members]

    def groups(self) -> list[Device]:
        return [d for d in self.devices.values() if d.members]

    def asr_hint(self, extra: list[str] = ()) -> str:
        """Device names for the speech recogniser, written as a finished sentence: Whisper treats the hint
        as text said before, and after an unfinished list ("... living room") it drops the words the user
        repeats ("set the living room lamp" came out as "lamp")."""
        names = list(dict.fromkeys([n for d in self.devices.values() for n in d.spoken_names] + list(extra)))
        return (", ".join(names).capitalize() + ".") if names else ""

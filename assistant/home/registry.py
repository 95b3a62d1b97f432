"""The devices this home has. The only place device names, areas and MQTT addresses come from.

Devices come from the config and from discovery (Home Assistant, Zigbee2MQTT). The config wins: a
discovered device whose id or name a configured device already has is left out, and `[[customize]]`
entries add names and areas to discovered ones. A discovered device whose commands would act on a
device of a confirmed domain (a lock) is refused: see guard.py. Discovery runs on the MQTT thread while
the pipeline reads, so the merged view is changed under a lock and swapped in whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from ..config import CustomizeConfig, DeviceConfig
from .guard import Guard


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


@dataclass
class Change:
    """What one announcement changed: devices shown, devices no longer shown, and devices refused
    (with why, and a detail for the log)."""

    added: list[Device] = field(default_factory=list)
    removed: list[Device] = field(default_factory=list)
    refused: list[tuple[Device, str, str]] = field(default_factory=list)

    def __iadd__(self, other: "Change") -> "Change":
        self.added += other.added
        self.removed += other.removed
        self.refused += other.refused
        return self


def _refusal(d: Device, reached: Device) -> tuple[Device, str, str]:
    return d, "commands reach a confirmed device", f"{d.name!r} would act on the {reached.domain} {reached.name!r}"


class Registry:
    def __init__(self, devices: list[Device], customize: list[CustomizeConfig] = (), confirm_domains=()):
        self.configured = {d.id: d for d in devices}
        self.customize = list(customize)
        self.discovered: dict[str, list[Device]] = {}  # by the source that announced them
        self.version = 0  # bumped on every change, so readers know to refresh
        self._lock = threading.Lock()
        self.devices: dict[str, Device] = dict(self.configured)
        self._names = {n: d.id for d in devices for n in d.spoken_names}  # spoken name -> id, of shown devices
        self._waiting: dict[str, list[Device]] = {}  # by source: discovered devices not shown (name taken, refused)
        self.guard = Guard(confirm_domains)
        for d in devices:
            if self.guard.confirmed(d):
                self.guard.protect(d)
            else:  # so that no announced lock can claim what the user configured as a light
                self.guard.track(d)

    @classmethod
    def from_config(cls, devices: list[DeviceConfig], customize: list[CustomizeConfig] = (),
                    confirm_domains=()) -> "Registry":
        return cls([from_config(d) for d in devices], customize, confirm_domains)

    # -- discovery ----------------------------------------------------------------------------------
    # Each change costs what the announcement holds, not what the home holds: 2000 retained configs took
    # 24 s of CPU when every one rebuilt the whole view. The view is still swapped in whole (a C-speed
    # dict copy), so readers on other threads never see it half changed.

    def set_discovered(self, source: str, devices: list[Device]) -> Change:
        """Replace what one source announced (an empty list removes it)."""
        with self._lock:
            change = Change()
            view, names = dict(self.devices), dict(self._names)
            freed = self._withdraw(source, view, names, change)
            devices = [self._customized(d) for d in devices]
            if devices:
                self.discovered[source] = devices
            claims = []
            for d in devices:
                if self.guard.confirmed(d):
                    reaching = self.guard.protect(d)
                    if mine := next((r for r in reaching if r.source == "config"), None):
                        claims.append(d)  # the config says what is on that topic, not the broker
                        self.guard.unprotect(d)
                        change.refused.append((d, "claims a configured device's topic",
                                               f"{d.name!r} ({d.domain}) on the topic of {mine.name!r}"))
                        continue
                    for other in reaching:
                        self._refuse_shown(other, d, view, names, change)
            for d in devices:
                if any(d is c for c in claims):
                    continue
                if (refusal := self._admit(source, d, view, names, change)) is not None:
                    change.refused.append(refusal)
            if freed:  # devices left out for a name or topic that is free now may be shown
                waiting, self._waiting = self._waiting, {}
                for s, ds in waiting.items():
                    for d in ds:
                        self._admit(s, d, view, names, change)
            if change.added or change.removed:
                self.devices, self._names = view, names
                self.version += 1
            return change

    def _withdraw(self, source: str, view: dict, names: dict, change: Change) -> bool:
        """Forget what `source` announced before; True if that frees a name or a topic."""
        self._waiting.pop(source, None)
        freed = False
        for d in self.discovered.pop(source, []):
            if self.guard.confirmed(d):
                self.guard.unprotect(d)
                freed = True
            if view.get(d.id) is d:
                self._hide(d, view, names, change)
                freed = True
        return freed

    def _admit(self, source: str, d: Device, view: dict, names: dict, change: Change):
        """Show d unless the config or an earlier announcement has its id or a name (it waits), or it would
        reach a confirmed device (it waits, refused). Returns the refusal, if any."""
        reached = None if self.guard.confirmed(d) else self.guard.reached_by(d)
        if reached is not None or d.id in view or any(n in names for n in d.spoken_names):
            self._waiting.setdefault(source, []).append(d)
            return None if reached is None else _refusal(d, reached)
        view[d.id] = d
        names.update(dict.fromkeys(d.spoken_names, d.id))
        if not self.guard.confirmed(d):
            self.guard.track(d)
        change.added.append(d)
        return None

    def _refuse_shown(self, d: Device, reached: Device, view: dict, names: dict, change: Change) -> None:
        """A shown device whose commands turn out to reach a newly announced confirmed one."""
        if view.get(d.id) is d:
            self._hide(d, view, names, change)
            self._waiting.setdefault(d.source, []).append(d)
            change.refused.append(_refusal(d, reached))

    def _hide(self, d: Device, view: dict, names: dict, change: Change) -> None:
        del view[d.id]
        for n in d.spoken_names:
            if names.get(n) == d.id:
                del names[n]
        self.guard.untrack(d)
        change.removed.append(d)

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

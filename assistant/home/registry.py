"""The devices this home has. The only place device names, areas and MQTT addresses come from."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DeviceConfig


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
    address: dict  # dialect-specific: friendly_name, base_topic, command_topic, brightness_scale
    color: bool = True

    @property
    def spoken_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


class Registry:
    def __init__(self, devices: list[Device]):
        self.devices = {d.id: d for d in devices}

    @classmethod
    def from_config(cls, devices: list[DeviceConfig]) -> "Registry":
        return cls([
            Device(id=d.id, name=normalize(d.name), aliases=tuple(normalize(a) for a in d.aliases),
                   area=normalize(d.area), domain=d.domain, dialect=d.dialect, color=d.color,
                   address={"friendly_name": d.friendly_name, "base_topic": d.base_topic,
                            "command_topic": d.command_topic, "brightness_scale": d.brightness_scale})
            for d in devices
        ])

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    @property
    def areas(self) -> list[str]:
        return sorted({d.area for d in self.devices.values() if d.area})

    def in_area(self, area: str, domain: str | None = None) -> list[Device]:
        return [d for d in self.devices.values() if d.area == normalize(area) and domain in (None, d.domain)]

    def of_domain(self, domain: str) -> list[Device]:
        return [d for d in self.devices.values() if d.domain == domain]

    def vocabulary(self) -> list[str]:
        """Names and areas as the user says them."""
        names = [n for d in self.devices.values() for n in d.spoken_names]
        return list(dict.fromkeys(names + self.areas))

    def asr_hint(self) -> str:
        """Device names for the speech recogniser, written as a finished sentence: Whisper treats the hint
        as text said before, and after an unfinished list ("... living room") it drops the words the user
        repeats ("set the living room lamp" came out as "lamp")."""
        names = list(dict.fromkeys(n for d in self.devices.values() for n in d.spoken_names))
        return (", ".join(names).capitalize() + ".") if names else ""

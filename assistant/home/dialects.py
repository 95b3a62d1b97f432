"""How each kind of device talks over MQTT: the commands it takes and the state it reports.
Topics come only from the registry's device addresses.

Dialects: zigbee2mqtt, ha_json (Home Assistant JSON schema), ha_default (Home Assistant default schema:
separate topics, plain payloads), tasmota (cmnd/<topic>/POWER and Dimmer)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..types import Command
from .colors import rgb

if TYPE_CHECKING:  # the registry builds on the dialects (its guard reads their topics)
    from .registry import Device


def command(device: Device, state: str | None = None, brightness: int | None = None,
            color: str | None = None) -> Command:
    """One MQTT command for a device. brightness is in percent; state is ON, OFF or TOGGLE."""
    a = device.address
    if device.dialect == "tasmota":
        if brightness is not None and brightness > 0:
            return Command(device.id, f"cmnd/{a['topic']}/Dimmer", str(brightness))
        return Command(device.id, f"cmnd/{a['topic']}/POWER", "OFF" if brightness == 0 else state or "ON")
    if device.dialect == "ha_default":
        if brightness is not None and brightness > 0 and a.get("brightness_command_topic"):
            value = max(1, round(brightness * a["brightness_scale"] / 100))
            return Command(device.id, a["brightness_command_topic"], str(value))
        on = state == "ON" or (brightness is not None and brightness > 0) or bool(color)
        return Command(device.id, a["command_topic"], a["payload_on"] if on else a["payload_off"])
    if device.dialect == "zigbee2mqtt":
        topic = f"{a['base_topic']}/{a['friendly_name']}/set"
        scale = 254  # Zigbee2MQTT brightness runs 0..254
    elif device.dialect == "ha_json":
        topic = a["command_topic"]
        scale = a["brightness_scale"]
    else:
        raise ValueError(f"unknown dialect {device.dialect!r}")
    payload: dict = {}
    if state:
        payload["state"] = state
    if brightness is not None:
        payload["state"] = "ON" if brightness > 0 else "OFF"
        if brightness > 0:
            payload["brightness"] = max(1, round(brightness * scale / 100))
    if color:
        r, g, b = rgb(color)
        payload["state"] = "ON"
        payload["color"] = {"r": r, "g": g, "b": b}
    return Command(device_id=device.id, topic=topic, payload=json.dumps(payload))


def command_topics(device: Device) -> list[str]:
    """Every topic a command to the device can go to."""
    a = device.address
    if device.dialect == "zigbee2mqtt":
        return [f"{a['base_topic']}/{a['friendly_name']}/set"]
    if device.dialect == "tasmota":
        return [f"cmnd/{a['topic']}/POWER", f"cmnd/{a['topic']}/Dimmer"]
    return [t for t in (a.get("command_topic"), a.get("brightness_command_topic")) if t]


def reach(device: Device) -> list[tuple[str, bool]]:
    """The topics that act on the device: (topic, whether every topic under it does too). Zigbee2MQTT
    also takes <device>/set/<attribute>, and Tasmota any cmnd/<topic>/<command>."""
    a = device.address
    if device.dialect == "zigbee2mqtt":
        return [(f"{a['base_topic']}/{a['friendly_name']}", True)]
    if device.dialect == "tasmota":
        return [(f"cmnd/{a['topic']}", True)]
    return [(t, False) for t in command_topics(device)]


def state_topics(device: Device) -> dict[str, str]:
    """The topics a device reports on, each with what it carries: state, brightness or availability."""
    a = device.address
    if device.dialect == "zigbee2mqtt":
        base = f"{a['base_topic']}/{a['friendly_name']}"
        return {base: "state", f"{base}/availability": "availability"}
    if device.dialect == "tasmota":
        t = a["topic"]
        return {f"stat/{t}/RESULT": "state", f"tele/{t}/STATE": "state", f"stat/{t}/POWER": "power",
                f"tele/{t}/LWT": "availability"}
    topics = {}
    for key, kind in (("state_topic", "state"), ("brightness_state_topic", "brightness"),
                      ("availability_topic", "availability")):
        if a.get(key):
            topics[a[key]] = kind
    return topics


def parse(device: Device, kind: str, payload: str) -> dict:
    """What a message on one of the device's topics says: a dict with some of on, brightness (percent),
    available. Raises ValueError for a message that does not fit."""
    a = device.address
    text = payload.strip()
    if kind == "availability":
        if text.startswith("{"):
            text = str(json.loads(text).get("state", ""))
        on_word = a.get("payload_available", "online").lower()
        off_word = a.get("payload_not_available", "offline").lower()
        if text.lower() not in (on_word, off_word):
            raise ValueError(f"unknown availability {text[:40]!r}")
        return {"available": text.lower() == on_word}
    if device.dialect == "ha_default" or kind in ("power", "brightness"):
        if kind == "brightness":
            return {"brightness": _percent(float(text), a.get("brightness_scale", 255))}
        on = a.get("state_on") or a.get("payload_on", "ON")  # a lock is told LOCK and reports LOCKED
        off = a.get("state_off") or a.get("payload_off", "OFF")
        if text not in (on, off):
            raise ValueError(f"unknown state {text[:40]!r}")
        return {"on": text == on}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("state is not a JSON object")
    out = {}
    if device.dialect == "tasmota":
        power = data.get("POWER", data.get("POWER1"))
        if power is not None:
            out["on"] = str(power).upper() == "ON"
        if isinstance(data.get("Dimmer"), (int, float)):
            out["brightness"] = int(data["Dimmer"])
        return out
    if "state" in data:
        out["on"] = str(data["state"]).upper() == "ON"
    if isinstance(data.get("brightness"), (int, float)):
        scale = 254 if device.dialect == "zigbee2mqtt" else a.get("brightness_scale", 255)
        out["brightness"] = _percent(data["brightness"], scale)
    return out


def _percent(value: float, scale: float) -> int:
    return max(0, min(100, round(value * 100 / scale)))

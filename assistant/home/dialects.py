"""How each kind of device wants to be told things over MQTT. Topics come only from the registry."""

from __future__ import annotations

import json

from ..types import Command
from .colors import rgb
from .registry import Device


def command(device: Device, state: str | None = None, brightness: int | None = None,
            color: str | None = None) -> Command:
    """One MQTT command for a device. brightness is in percent; state is ON or OFF."""
    if device.dialect == "zigbee2mqtt":
        topic = f"{device.address['base_topic']}/{device.address['friendly_name']}/set"
        scale = 254  # Zigbee2MQTT brightness runs 0..254
    elif device.dialect == "ha_json":
        topic = device.address["command_topic"]
        scale = device.address["brightness_scale"]
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

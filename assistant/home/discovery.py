"""Devices that announce themselves: Home Assistant MQTT discovery and the Zigbee2MQTT bridge.

Each retained announcement becomes registry devices; a re-announcement replaces them and an empty
payload removes them. A malformed announcement is logged and ignored: it never removes what was known.
"""

from __future__ import annotations

import json
import logging
import re

from ..config import DiscoveryConfig
from .registry import Device, Registry, normalize

log = logging.getLogger(__name__)

# Home Assistant's abbreviations for the keys we read (the full list is longer).
ABBREVIATIONS = {
    "cmd_t": "command_topic", "stat_t": "state_topic", "avty_t": "availability_topic", "bri_scl": "brightness_scale",
    "bri_cmd_t": "brightness_command_topic", "bri_stat_t": "brightness_state_topic", "pl_on": "payload_on",
    "pl_off": "payload_off", "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
    "uniq_id": "unique_id", "obj_id": "object_id", "dev": "device", "avty": "availability",
    "sup_clrm": "supported_color_modes", "clrm": "color_mode", "stat_on": "state_on", "stat_off": "state_off",
    "sa": "suggested_area", "t": "topic", "bri": "brightness",
}


class DiscoveryError(ValueError):
    pass


def _expand(cfg: dict) -> dict:
    out = {ABBREVIATIONS.get(k, k): v for k, v in cfg.items()}
    base = out.pop("~", None)
    if base is not None:  # "~" abbreviates a common topic prefix or suffix
        out = {k: v.replace("~", base) if isinstance(v, str) and k.endswith("topic") else v for k, v in out.items()}
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def ha_device(topic: str, payload: str) -> Device:
    """One `<prefix>/<light|switch>/[node_id/]object_id/config` announcement as a device."""
    parts = topic.split("/")
    component, object_id = parts[1], parts[-2]
    try:
        cfg = json.loads(payload)
    except ValueError:
        raise DiscoveryError("not JSON") from None
    if not isinstance(cfg, dict):
        raise DiscoveryError("not a JSON object")
    cfg = _expand(cfg)
    dev = _expand(cfg.get("device") or {}) if isinstance(cfg.get("device"), dict) else {}
    name = cfg.get("name") or dev.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DiscoveryError("no name")
    if not isinstance(cfg.get("command_topic"), str) or not cfg["command_topic"]:
        raise DiscoveryError("no command_topic")
    schema = cfg.get("schema", "default")
    if component == "light" and schema not in ("json", "default"):
        raise DiscoveryError(f"light schema {schema!r} is not supported (json and default are)")
    avail = cfg.get("availability")
    if isinstance(avail, list) and avail and isinstance(avail[0], dict):  # the list form: use the first
        first = _expand(avail[0])
        cfg.setdefault("availability_topic", first.get("topic", ""))
        cfg.setdefault("payload_available", first.get("payload_available", "online"))
        cfg.setdefault("payload_not_available", first.get("payload_not_available", "offline"))
    scale = cfg.get("brightness_scale", 255)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale <= 0:
        raise DiscoveryError(f"bad brightness_scale {scale!r}")
    modes = cfg.get("supported_color_modes") or []
    json_schema = component == "light" and schema == "json"
    address = {
        "command_topic": cfg["command_topic"], "state_topic": cfg.get("state_topic", ""),
        "availability_topic": cfg.get("availability_topic", ""),
        "payload_available": str(cfg.get("payload_available", "online")),
        "payload_not_available": str(cfg.get("payload_not_available", "offline")),
        "brightness_command_topic": cfg.get("brightness_command_topic", ""),
        "brightness_state_topic": cfg.get("brightness_state_topic", ""),
        "payload_on": str(cfg.get("payload_on", "ON")), "payload_off": str(cfg.get("payload_off", "OFF")),
        "brightness_scale": scale,
    }
    if component == "switch":  # a switch reports state_on/state_off, defaulting to its payloads
        address["payload_on"] = str(cfg.get("state_on", address["payload_on"]))
        address["payload_off"] = str(cfg.get("state_off", address["payload_off"]))
    return Device(
        id=_slug(cfg.get("object_id") or name) or _slug(object_id), name=normalize(name), aliases=(),
        area=normalize(dev.get("suggested_area") or ""), domain=component,
        dialect="ha_json" if json_schema else "ha_default", address=address,
        color=json_schema and (bool(cfg.get("rgb")) or any(m in ("rgb", "hs", "xy", "rgbw", "rgbww") for m in modes)),
        source=topic)


def _z2m_exposes(definition: dict) -> tuple[str, bool] | None:
    """('light'|'switch', has colour) from a Zigbee2MQTT definition's exposes, or None."""
    for e in definition.get("exposes") or []:
        if isinstance(e, dict) and e.get("type") in ("light", "switch"):
            feats = {f.get("name") for f in e.get("features", []) if isinstance(f, dict)}
            return e["type"], bool(feats & {"color_xy", "color_hs"})
    return None


def _named_entries(payload: str, topic: str) -> list[dict]:
    """The entries of a Zigbee2MQTT bridge list that have a friendly name; others are skipped."""
    data = json.loads(payload)
    if not isinstance(data, list):
        raise DiscoveryError(f"{topic} is not a JSON list")
    return [e for e in data if isinstance(e, dict) and isinstance(e.get("friendly_name"), str)]


def z2m_devices(payload: str, base: str) -> list[Device]:
    out = []
    for d in _named_entries(payload, "bridge/devices"):
        kind = _z2m_exposes(d.get("definition") or {})
        if kind is None:
            continue  # sensors, the coordinator, unsupported devices
        fn = d["friendly_name"]
        out.append(Device(id=_slug(fn), name=normalize(fn.split("/")[-1]), aliases=(), area="",
                          domain=kind[0], dialect="zigbee2mqtt", color=kind[1],
                          address={"base_topic": base, "friendly_name": fn, "ieee": d.get("ieee_address")},
                          source=f"{base}/bridge/devices"))
    return out


def z2m_groups(payload: str, base: str, by_ieee: dict[str, str]) -> list[Device]:
    out = []
    for g in _named_entries(payload, "bridge/groups"):
        members = tuple(by_ieee[m["ieee_address"]] for m in g.get("members", [])
                        if isinstance(m, dict) and m.get("ieee_address") in by_ieee)
        if not members:
            continue
        fn = g["friendly_name"]
        out.append(Device(id=_slug(fn), name=normalize(fn), aliases=(), area="", domain="light",
                          dialect="zigbee2mqtt", address={"base_topic": base, "friendly_name": fn},
                          members=members, source=f"{base}/bridge/groups"))
    return out


class Discovery:
    """Feeds announcements from the broker into the registry."""

    def __init__(self, cfg: DiscoveryConfig, registry: Registry):
        self.cfg = cfg
        self.registry = registry
        self._groups: dict[str, str] = {}  # last groups payload per base, re-read when devices change

    def topics(self) -> list[str]:
        if not self.cfg.enabled:
            return []
        p = self.cfg.homeassistant_prefix
        return [f"{p}/light/#", f"{p}/switch/#"] + [f"{b}/bridge/{what}" for b in self.cfg.zigbee2mqtt_base_topics
                                                    for what in ("devices", "groups")]

    def on_message(self, topic: str, payload: str) -> None:
        try:
            self._handle(topic, payload)
        except (DiscoveryError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("ignored the announcement on %s: %s", topic, e)

    def _handle(self, topic: str, payload: str) -> None:
        for base in self.cfg.zigbee2mqtt_base_topics:
            if topic == f"{base}/bridge/devices":
                self.registry.set_discovered(topic, z2m_devices(payload, base) if payload else [])
                if base in self._groups:
                    self._handle(f"{base}/bridge/groups", self._groups[base])
                return
            if topic == f"{base}/bridge/groups":
                self._groups[base] = payload
                by_ieee = {d.address.get("ieee"): d.id for d in self.registry.discovered.get(f"{base}/bridge/devices", [])}
                self.registry.set_discovered(topic, z2m_groups(payload, base, by_ieee) if payload else [])
                return
        if not topic.endswith("/config") or "/voice_assistant_" in topic:
            return  # voice assistants' own entities (mute switches) are not lights: see presence.py
        if not payload.strip():
            self.registry.set_discovered(topic, [])  # an empty retained config removes the device
            return
        self.registry.set_discovered(topic, [ha_device(topic, payload)])

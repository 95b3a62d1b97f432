"""Devices that announce themselves: Home Assistant MQTT discovery and the Zigbee2MQTT bridge.

Each retained announcement becomes registry devices; a re-announcement replaces them and an empty
payload removes them. A malformed announcement, or a device whose topics are not MQTT topics one can
publish to or that `discovery.allow` does not allow, is refused: it never removes what was known.
Anyone on the broker can announce: docs/mqtt.md says what that lets them do.
"""

from __future__ import annotations

import json
import re

from paho.mqtt.client import topic_matches_sub

from ..config import DiscoveryConfig
from ..mqtt_topics import topic_problem
from . import dialects
from .registry import Change, Device, Registry, normalize

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
    """An announcement that cannot be used: a reason from a short fixed list (it is counted by reason),
    and what exactly was wrong, for the log."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason, self.detail = reason, detail


def _expand(cfg: dict) -> dict:
    out = {ABBREVIATIONS.get(k, k): v for k, v in cfg.items()}
    base = out.pop("~", None)
    if base is not None:  # "~" abbreviates a common topic prefix or suffix
        out = {k: v.replace("~", base) if isinstance(v, str) and k.endswith("topic") else v for k, v in out.items()}
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


TOPIC_KEYS = ("command_topic", "state_topic", "availability_topic", "brightness_command_topic",
              "brightness_state_topic")

# What "on" and "off" mean for the components that are confirmed before acting (understand.confirm_domains):
# the payloads to send and the states they report, with Home Assistant's defaults.
CONFIRMED = {
    "lock": (("payload_lock", "LOCK"), ("payload_unlock", "UNLOCK"),
             ("state_locked", "LOCKED"), ("state_unlocked", "UNLOCKED")),
    "cover": (("payload_open", "OPEN"), ("payload_close", "CLOSE"), ("state_open", "open"), ("state_closed", "closed")),
    "alarm_control_panel": (("payload_arm_away", "ARM_AWAY"), ("payload_disarm", "DISARM"),
                            ("state_armed_away", "armed_away"), ("state_disarmed", "disarmed")),
}
COMPONENTS = ("light", "switch", *CONFIRMED)


def _on_off(component: str, cfg: dict) -> dict:
    """payload_on/off (sent) and state_on/off (reported) for the device's address."""
    if component in CONFIRMED:
        keys = CONFIRMED[component]
        return {name: str(cfg.get(key, default)) for name, (key, default) in
                zip(("payload_on", "payload_off", "state_on", "state_off"), keys)}
    on, off = str(cfg.get("payload_on", "ON")), str(cfg.get("payload_off", "OFF"))
    if component == "switch":  # a switch reports state_on/state_off, defaulting to its payloads
        return {"payload_on": on, "payload_off": off, "state_on": str(cfg.get("state_on", on)),
                "state_off": str(cfg.get("state_off", off))}
    return {"payload_on": on, "payload_off": off}


def ha_device(topic: str, payload: str) -> Device:
    """One `<prefix>/<component>/[node_id/]object_id/config` announcement as a device."""
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
    if not cfg.get("command_topic"):
        raise DiscoveryError("no command_topic")
    schema = cfg.get("schema", "default")
    if component == "light" and schema not in ("json", "default"):
        raise DiscoveryError("light schema not supported", f"{schema!r}; json and default are")
    avail = cfg.get("availability")
    if isinstance(avail, list) and avail and isinstance(avail[0], dict):  # the list form: use the first
        first = _expand(avail[0])
        cfg.setdefault("availability_topic", first.get("topic", ""))
        cfg.setdefault("payload_available", first.get("payload_available", "online"))
        cfg.setdefault("payload_not_available", first.get("payload_not_available", "offline"))
    for key in TOPIC_KEYS:
        if not isinstance(cfg.get(key, ""), str):
            raise DiscoveryError(f"{key} is not a string")
    scale = cfg.get("brightness_scale", 255)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale <= 0:
        raise DiscoveryError("bad brightness_scale", repr(scale)[:40])
    modes = cfg.get("supported_color_modes") or []
    json_schema = component == "light" and schema == "json"
    address = {
        "command_topic": cfg["command_topic"], "state_topic": cfg.get("state_topic", ""),
        "availability_topic": cfg.get("availability_topic", ""),
        "payload_available": str(cfg.get("payload_available", "online")),
        "payload_not_available": str(cfg.get("payload_not_available", "offline")),
        "brightness_command_topic": cfg.get("brightness_command_topic", ""),
        "brightness_state_topic": cfg.get("brightness_state_topic", ""),
        "brightness_scale": scale, **_on_off(component, cfg),
    }
    return Device(
        id=_slug(cfg.get("object_id") or name) or _slug(object_id), name=normalize(name), aliases=(),
        area=normalize(dev.get("suggested_area") or ""), domain=component,
        dialect="ha_json" if json_schema else "ha_default", address=address,
        color=json_schema and (bool(cfg.get("rgb")) or any(m in ("rgb", "hs", "xy", "rgbw", "rgbww") for m in modes)),
        source=topic)


def _z2m_exposes(definition: dict) -> tuple[str, bool] | None:
    """(domain, has colour) from a Zigbee2MQTT definition's exposes, or None."""
    for e in definition.get("exposes") or []:
        if isinstance(e, dict) and e.get("type") in ("light", "switch", "lock", "cover"):
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


def z2m_groups(payload: str, base: str, lights: dict[str, Device], taken: set[str]) -> tuple[list[Device], list]:
    """Groups of known lights and switches, and those refused: a group is told in place of its members,
    so one with a member that is not a light (a lock), or that the bridge never listed, could act on
    a device nobody asked for, and one on a device's topic would take that device's commands."""
    out, refused = [], []
    for g in _named_entries(payload, "bridge/groups"):
        entries = g.get("members") if isinstance(g.get("members"), list) else []
        ieees = [m.get("ieee_address") for m in entries if isinstance(m, dict)]
        if not ieees:
            continue
        fn = g["friendly_name"]
        group = Device(id=_slug(fn), name=normalize(fn), aliases=(), area="", domain="light",
                       dialect="zigbee2mqtt", address={"base_topic": base, "friendly_name": fn},
                       members=tuple(lights[i].id for i in ieees if isinstance(i, str) and i in lights),
                       source=f"{base}/bridge/groups")
        if len(group.members) < len(ieees):
            refused.append((group, "group member not a known light", f"{len(ieees) - len(group.members)} of "
                                                                    f"{len(ieees)} members are not listed lights"))
        elif f"{base}/{fn}/set" in taken:
            refused.append((group, "group takes a device's topic", f"{base}/{fn}/set"))
        else:
            out.append(group)
    return out, refused


class Discovery:
    """Feeds announcements from the broker into the registry, each device checked first."""

    def __init__(self, cfg: DiscoveryConfig, registry: Registry):
        self.cfg = cfg
        self.registry = registry
        self._groups: dict[str, str] = {}  # last groups payload per base, re-read when devices change

    def topics(self) -> list[str]:
        if not self.cfg.enabled:
            return []
        p = self.cfg.homeassistant_prefix
        return [f"{p}/{c}/#" for c in COMPONENTS] + [f"{b}/bridge/{what}" for b in self.cfg.zigbee2mqtt_base_topics
                                                    for what in ("devices", "groups")]

    def on_message(self, topic: str, payload: str) -> Change:
        """What the announcement changed. Raises DiscoveryError (or ValueError, KeyError, TypeError) for one
        that cannot be read; that leaves the registry as it was."""
        for base in self.cfg.zigbee2mqtt_base_topics:
            if topic == f"{base}/bridge/devices":
                change = self._announce(topic, z2m_devices(payload, base) if payload else [])
                if base in self._groups:
                    change += self._announce_groups(base, self._groups[base])
                return change
            if topic == f"{base}/bridge/groups":
                self._groups[base] = payload
                return self._announce_groups(base, payload)
        if not topic.endswith("/config") or "/voice_assistant_" in topic:
            return Change()  # voice assistants' own entities (mute switches) are not lights: see presence.py
        if not payload.strip():
            return self.registry.set_discovered(topic, [])  # an empty retained config removes the device
        return self._announce(topic, [ha_device(topic, payload)])

    def _announce_groups(self, base: str, payload: str) -> Change:
        source = f"{base}/bridge/groups"
        if not payload:
            return self.registry.set_discovered(source, [])
        lights = {d.address["ieee"]: d for d in self.registry.discovered.get(f"{base}/bridge/devices", [])
                  if d.domain in ("light", "switch") and isinstance(d.address["ieee"], str)}
        taken = {t for d in self.registry.devices.values() if d.source != source for t in dialects.command_topics(d)}
        groups, refused = z2m_groups(payload, base, lights, taken)
        return self._announce(source, groups, refused)

    def _announce(self, source: str, devices: list[Device], refused=()) -> Change:
        """Devices that pass the checks go to the registry, the others come back refused. An announcement
        with nothing usable in it leaves what was known."""
        ok, refused = [], list(refused)
        for d in devices:
            problem = self._problem(d)
            if problem is None:
                ok.append(d)
            else:
                refused.append((d, *problem))
        if refused and not ok:
            return Change(refused=refused)
        change = self.registry.set_discovered(source, ok)
        change.refused[:0] = refused
        return change

    def _problem(self, d: Device) -> tuple[str, str] | None:
        """(reason, detail) if the device's topics are not ones to use, or not ones it may command."""
        commands = dialects.command_topics(d)
        for t in [*commands, *dialects.state_topics(d)]:
            if (problem := topic_problem(t)) is not None:
                return f"topic {problem}", repr(t)
        if d.dialect == "zigbee2mqtt" and (problem := topic_problem(d.address["friendly_name"], part=True)):
            return f"friendly_name {problem}", repr(d.address["friendly_name"])
        for t in commands:
            if not any(topic_matches_sub(pattern, t) for pattern in self.cfg.allow):
                return "command topic not in discovery.allow", t
        return None

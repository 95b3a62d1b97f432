"""The assistant as a thing on the broker: its own Home Assistant discovery (state, last transcript, last
intent, a mute switch), its status topics, and the messages it takes from outside (mute, announcements).

Incoming messages arrive on the MQTT thread and only go into `Inbox`; the conductor takes them out when
it is idle, so nothing from outside ever interrupts a turn or calls into a stage.
"""

from __future__ import annotations

import json
import logging
import queue
import re

from . import __version__
from .config import Config

log = logging.getLogger(__name__)

MAX_SAY_CHARS = 1000  # a longer announcement is refused: it would hold the speaker for minutes
NODE_PREFIX = "voice_assistant_"  # discovery ignores these configs: our entities are not lights


def node_id(site: str) -> str:
    return NODE_PREFIX + re.sub(r"[^a-z0-9_]+", "_", site.lower()).strip("_")


def discovery_configs(cfg: Config) -> list[tuple[str, str]]:
    """Retained Home Assistant discovery configs for this box: (topic, JSON payload)."""
    base = f"{cfg.mqtt.topic_prefix}/{cfg.site}"
    node = node_id(cfg.site)
    common = {
        "availability_topic": f"{base}/availability",
        "device": {"identifiers": [node], "name": f"Voice assistant {cfg.site}", "model": "Offline voice assistant",
                   "sw_version": __version__},
    }
    entities = [
        ("sensor", "state", {"name": "State", "state_topic": f"{base}/state", "icon": "mdi:account-voice"}),
        ("sensor", "transcript", {"name": "Last transcript", "state_topic": f"{base}/transcript",
                                  "icon": "mdi:text-to-speech"}),
        ("sensor", "last_intent", {"name": "Last intent", "state_topic": f"{base}/last_intent",
                                   "value_template": "{{ value_json.name }}",
                                   "json_attributes_topic": f"{base}/last_intent", "icon": "mdi:lightning-bolt"}),
        ("switch", "mute", {"name": "Mute", "command_topic": f"{base}/mute/set", "state_topic": f"{base}/mute",
                            "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:microphone-off"}),
    ]
    prefix = cfg.discovery.homeassistant_prefix
    return [(f"{prefix}/{component}/{node}/{obj}/config",
             json.dumps({**body, "unique_id": f"{node}_{obj}", "object_id": f"{node}_{obj}", **common}))
            for component, obj, body in entities]


class Inbox:
    """Requests from the broker for the conductor: ("mute", bool) and ("say", text)."""

    def __init__(self, cfg: Config):
        base = f"{cfg.mqtt.topic_prefix}/{cfg.site}"
        self.mute_topic = f"{base}/mute/set"
        self.say_topic = f"{base}/say"
        self.queue: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()

    def attach(self, link) -> None:
        link.subscribe(self.mute_topic, self._on_mute)
        link.subscribe(self.say_topic, self._on_say)

    def _on_mute(self, topic: str, payload: str) -> None:
        p = payload.strip().upper()
        if p not in ("ON", "OFF"):
            log.warning("ignored %r on %s (expected ON or OFF)", payload[:40], topic)
            return
        self.queue.put(("mute", p == "ON"))

    def _on_say(self, topic: str, payload: str) -> None:
        text = payload.strip()
        if text.startswith("{"):  # also {"text": "..."}, the shape Home Assistant's mqtt.publish makes easy
            try:
                text = str(json.loads(text).get("text", "")).strip()
            except (ValueError, AttributeError):
                text = ""
        if not text or len(text) > MAX_SAY_CHARS:
            log.warning("ignored an announcement on %s: empty or longer than %d characters", topic, MAX_SAY_CHARS)
            return
        self.queue.put(("say", text))

    def take(self) -> list[tuple[str, object]]:
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

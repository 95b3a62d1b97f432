"""The assistant as a thing on the broker: its own Home Assistant discovery (state, last transcript, last
intent, the next timer, a mute switch), its status topics, its timers, the intents it recognised, and the
messages it takes from outside (mute, announcements).

`Presence` only listens to the conductor's events and publishes what they say; the conductor never
publishes status itself. Incoming messages arrive on the MQTT thread and only go into `Inbox`; the
conductor takes them out when it is idle, so nothing from outside ever interrupts a turn or calls into a
stage.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import re
import time
import uuid
from dataclasses import asdict

from . import __version__
from .config import Config
from .events import Event, Kind
from .types import Command, Intent

log = logging.getLogger(__name__)

MAX_SAY_CHARS = 1000  # a longer announcement is refused: it would hold the speaker for minutes
MAX_QUEUED = 8  # requests waiting for the end of a turn; a burst beyond is dropped
SAYS_PER_MINUTE = 6  # announcements taken in any minute; a flood would keep the box talking
NODE_PREFIX = "voice_assistant_"  # discovery ignores these configs: our entities are not lights


def node_id(site: str) -> str:
    return NODE_PREFIX + re.sub(r"[^a-z0-9_]+", "_", site.lower()).strip("_")


def base_topic(cfg: Config) -> str:
    """Every topic of this box's own lies under this one."""
    return f"{cfg.mqtt.topic_prefix}/{cfg.site}"


def discovery_configs(cfg: Config) -> list[tuple[str, str]]:
    """Retained Home Assistant discovery configs for this box: (topic, JSON payload)."""
    base = base_topic(cfg)
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
        ("sensor", "next_timer", {"name": "Next timer", "state_topic": f"{base}/timers",
                                  "value_template": "{{ value_json.next.label if value_json.next else 'none' }}",
                                  "json_attributes_topic": f"{base}/timers",
                                  "json_attributes_template": "{{ (value_json.next or {}) | tojson }}",
                                  "icon": "mdi:timer-outline"}),
        ("switch", "mute", {"name": "Mute", "command_topic": f"{base}/mute/set", "state_topic": f"{base}/mute",
                            "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:microphone-off"}),
    ]
    prefix = cfg.discovery.homeassistant_prefix
    return [(f"{prefix}/{component}/{node}/{obj}/config",
             json.dumps({**body, "unique_id": f"{node}_{obj}", "object_id": f"{node}_{obj}", **common}))
            for component, obj, body in entities]


def intent_messages(intent: Intent, cfg: Config) -> list[Command]:
    """The intent on our topic and, with mqtt.hermes, in Rhasspy's shape. Topics are built from the
    intent's name, which comes from the templates or the config, never from what was said."""
    body = {k: v for k, v in asdict(intent).items() if v not in (None, (), {}, False) or k == "all_devices"}
    body["site"] = cfg.site
    out = [Command("", f"{base_topic(cfg)}/intent/{intent.name}", json.dumps(body, default=list))]
    if cfg.mqtt.hermes:
        out.append(Command("", f"hermes/intent/{intent.name}", json.dumps(hermes(intent, cfg.site), default=str)))
    return out


def hermes(intent: Intent, site: str) -> dict:
    """An intent as Rhasspy's Hermes protocol published it on hermes/intent/<intentName>."""
    def slot(name, value):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return {"entity": name, "slotName": name, "rawValue": str(value), "confidence": 1.0,
                "value": {"kind": "Number" if number else "Custom", "value": value}}

    return {"input": intent.text, "intent": {"intentName": intent.name, "confidenceScore": 1.0},
            "slots": [slot(k, v) for k, v in intent.slots.items()], "siteId": site,
            "sessionId": uuid.uuid4().hex, "customData": None}


class Presence:
    """Publishes what the events say: the state (shown as "muted" while idle and muted), the last
    transcript and intent (retained, for Home Assistant's sensors), each intent carried out, and on every
    (re)connect the box's own discovery configs."""

    def __init__(self, cfg: Config, link, events, timers=None):
        self.cfg = cfg
        self.timers = timers  # the box's Timers: all of them are announced on every (re)connect
        self.link = link
        self.base = base_topic(cfg)
        self.state = "idle"
        self.muted = False
        self._health: dict | None = None  # as last published
        self.inbox = Inbox(cfg)
        events.subscribe(self._on_event)
        if link:
            self.inbox.attach(link)
            link.when_connected(self._announce_self)

    def _publish(self, topic: str, payload: str, retain: bool = True) -> None:
        if self.link:
            self.link.publish_nowait(topic, payload, retain=retain)

    def _shown_state(self) -> str:
        return "muted" if self.muted and self.state == "idle" else self.state

    def _announce_self(self) -> None:
        """On every (re)connect, on the MQTT thread: a restarted broker may have lost retained messages."""
        for topic, payload in discovery_configs(self.cfg):
            self._publish(topic, payload)
        self._publish(f"{self.base}/mute", "ON" if self.muted else "OFF")
        self._publish(f"{self.base}/state", self._shown_state())
        self._publish(f"{self.base}/error", "")  # a config error said at an earlier start is over
        if self.timers is not None:  # "none" in Home Assistant before the first timer, not "unknown"
            self._publish(f"{self.base}/timers", json.dumps(self.timers.summary_now()))
        self._publish_health()

    def _publish_health(self) -> None:
        """What was refused from the broker, by reason, and how often the link's thread was restarted:
        retained, updated between turns when it changed."""
        if self.link is None:
            return
        health = {"rejected": self.link.rejected.total, "by_reason": dict(self.link.rejected.counts),
                  "link_restarts": len(self.link.restarts)}
        if health != self._health:
            self._health = health
            self._publish(f"{self.base}/health", json.dumps(health))

    def _on_event(self, ev: Event) -> None:
        d = ev.data
        if ev.kind is Kind.STATE:
            self.state = d["state"]
            self._publish(f"{self.base}/state", self._shown_state())
            if self.state == "idle":
                self._publish_health()
        elif ev.kind is Kind.MUTE:
            self.muted = d["muted"]
            self._publish(f"{self.base}/mute", "ON" if self.muted else "OFF")
        elif ev.kind is Kind.WAKE:  # which wake word, for automations (a light that shows who was asked)
            self._publish(f"{self.base}/wake", json.dumps({"word": d["word"], "score": d["score"]}), retain=False)
        elif ev.kind is Kind.TRANSCRIPT:
            self._publish(f"{self.base}/transcript", d["text"].strip()[:255])
        elif ev.kind is Kind.INTENT:
            i = d["intent"]
            body = {"name": i.name, "text": i.text, "slots": i.slots, "source": i.source}
            self._publish(f"{self.base}/last_intent", json.dumps(body, default=str))
        elif ev.kind is Kind.TIMER:  # the change for automations, and all timers for the sensor
            self._publish(f"{self.base}/timer/{d['event']}", json.dumps(d["timer"]), retain=False)
            self._publish(f"{self.base}/timers", json.dumps(d["timers"]))
        elif ev.kind is Kind.ACTED and (i := d["outcome"].intent) and not d["outcome"].carries_intent:
            for c in intent_messages(i, self.cfg):  # for automations (docs/mqtt.md)
                self._publish(c.topic, c.payload, retain=False)


class Inbox:
    """Requests from the broker for the conductor: ("mute", bool) and ("say", text).

    Any client on the broker can send them, so they are bounded: retained ones are ignored (the box
    starts unmuted and says nothing old after a restart), at most `MAX_QUEUED` wait, announcements are
    at most `MAX_SAY_CHARS` long and at most `SAYS_PER_MINUTE` are taken; the rest is dropped, counted
    and logged once (`link.rejected`)."""

    def __init__(self, cfg: Config):
        base = base_topic(cfg)
        self.mute_topic = f"{base}/mute/set"
        self.say_topic = f"{base}/say"
        self.queue: queue.Queue[tuple[str, object]] = queue.Queue(MAX_QUEUED)
        self.rejected = None  # the link's tally, once attached
        self._said_at: collections.deque[float] = collections.deque(maxlen=SAYS_PER_MINUTE)

    def attach(self, link) -> None:
        self.rejected = link.rejected
        link.subscribe(self.mute_topic, self._on_mute, fresh_only=True)
        link.subscribe(self.say_topic, self._on_say, fresh_only=True)

    def _drop(self, topic: str, reason: str) -> None:
        if self.rejected is not None:
            self.rejected.add(topic, reason)
        else:
            log.warning("ignored the message on %s: %s", topic, reason)

    def _put(self, topic: str, request: tuple[str, object]) -> None:
        try:
            self.queue.put_nowait(request)
        except queue.Full:
            self._drop(topic, f"more than {MAX_QUEUED} requests waiting")

    def _on_mute(self, topic: str, payload: str) -> None:
        p = payload.strip().upper()
        if p not in ("ON", "OFF"):
            self._drop(topic, "not ON or OFF")
            return
        self._put(topic, ("mute", p == "ON"))

    def _on_say(self, topic: str, payload: str) -> None:
        text = payload.strip()
        if text.startswith("{"):  # also {"text": "..."}, the shape Home Assistant's mqtt.publish makes easy
            try:
                text = str(json.loads(text).get("text", "")).strip()
            except (ValueError, AttributeError, RecursionError):
                text = ""
        if not text or len(text) > MAX_SAY_CHARS:
            self._drop(topic, f"announcement empty or longer than {MAX_SAY_CHARS} characters")
            return
        now = time.monotonic()
        if len(self._said_at) == SAYS_PER_MINUTE and now - self._said_at[0] < 60:
            self._drop(topic, f"more than {SAYS_PER_MINUTE} announcements a minute")
            return
        self._said_at.append(now)
        self._put(topic, ("say", text))

    def take(self) -> list[tuple[str, object]]:
        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

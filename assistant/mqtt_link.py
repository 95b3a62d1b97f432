"""The assistant's one connection to the broker (paho-mqtt in its own network thread).

It reconnects by itself with backoff and announces availability with a retained last will. A command is
sent only while connected: it is delivered within `command_timeout_s` or reported as failed, never
queued to arrive minutes later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from .types import Command

log = logging.getLogger(__name__)


class MqttError(Exception):
    pass


def parse_url(url: str) -> tuple[str, int, bool]:
    u = urlparse(url)
    tls = u.scheme == "mqtts"
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise MqttError(f"not an MQTT URL: {url!r} (expected mqtt://host:1883)")
    return u.hostname, u.port or (8883 if tls else 1883), tls


class MqttLink:
    def __init__(self, url: str, availability_topic: str, username: str = "", password: str = "",
                 client_id: str = "", command_timeout_s: float = 3.0, ca_file: str = "", cert_file: str = "",
                 key_file: str = "", max_payload_kb: int = 2048):
        self.host, self.port, tls = parse_url(url)
        self.url = url
        self.availability_topic = availability_topic
        self.command_timeout_s = command_timeout_s
        self.max_payload = max_payload_kb * 1024
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"assistant-{uuid.uuid4().hex[:8]}")
        if username:
            self.client.username_pw_set(username, password or None)
        if tls:
            self.client.tls_set(ca_certs=ca_file or None, certfile=cert_file or None, keyfile=key_file or None)
        self.client.on_message = self._on_message
        self._handlers: list[tuple[str, object]] = []  # (topic filter, fn(topic, payload)), kept across reconnects
        self._pending_subs: set[int] = set()  # subscriptions the broker has not acknowledged yet
        self._subs_done = threading.Condition()
        self._on_connected: list = []  # fn(), after every (re)connect: a restarted broker may have lost retained state
        self.last_message = time.monotonic()
        self.client.will_set(availability_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self._connected = threading.Event()
        self._last_error = ""
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Begin connecting in the background; never raises for an unreachable broker."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._stopping = True
        if self.connected:
            self.client.publish(self.availability_topic, "offline", qos=1, retain=True).wait_for_publish(1)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._last_error = str(reason_code)
            log.warning("broker %s refused the connection: %s", self.url, reason_code)
            return
        log.info("connected to broker %s", self.url)
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        with self._subs_done:
            self._pending_subs.clear()  # acknowledgements for the last session will never come
        for topic in dict.fromkeys(t for t, _ in self._handlers):
            self._subscribe(topic)
        self._connected.set()
        for fn in self._on_connected:
            try:
                fn()
            except Exception:
                log.exception("an on-connect action failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self._connected.is_set() and not self._stopping:
            log.warning("lost the broker %s (%s); reconnecting", self.url, reason_code)
        self._connected.clear()

    @classmethod
    def from_config(cls, m, availability_topic: str) -> "MqttLink":
        """From the [mqtt] config section."""
        return cls(m.url, availability_topic, m.username, m.password, m.client_id, m.command_timeout_s,
                   m.ca_file, m.cert_file, m.key_file, m.max_payload_kb)

    def when_connected(self, fn) -> None:
        """Call fn() on the MQTT thread after every (re)connect, and now if connected."""
        self._on_connected.append(fn)
        if self.connected:
            fn()

    def subscribe(self, topic: str, fn) -> None:
        """Call fn(topic, payload text) for every message matching topic, on the MQTT thread (keep it short).
        Subscriptions are renewed after every reconnect."""
        self._handlers.append((topic, fn))
        if self.connected:
            self._subscribe(topic)

    def _subscribe(self, topic: str) -> None:
        with self._subs_done:
            _, mid = self.client.subscribe(topic, qos=1)
            if mid is not None:
                self._pending_subs.add(mid)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._subs_done:
            self._pending_subs.discard(mid)
            self._subs_done.notify_all()

    def wait_subscribed(self, timeout: float) -> bool:
        """Until the broker has acknowledged every subscription so far: a message sent after that reaches us."""
        with self._subs_done:
            return self._subs_done.wait_for(lambda: self.connected and not self._pending_subs, timeout)

    def _on_message(self, client, userdata, msg):
        self.last_message = time.monotonic()
        if len(msg.payload) > self.max_payload:
            log.warning("ignored a %d-byte message on %s (limit mqtt.max_payload_kb)", len(msg.payload), msg.topic)
            return
        try:
            payload = msg.payload.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("ignored a message on %s that is not UTF-8 text", msg.topic)
            return
        for topic, fn in list(self._handlers):
            if mqtt.topic_matches_sub(topic, msg.topic):
                try:
                    fn(msg.topic, payload)
                except Exception:  # one bad message must not stop the others
                    log.exception("handling a message on %s failed", msg.topic)

    def status(self) -> str:
        if self.connected:
            return f"connected to {self.url}"
        return f"not connected to {self.url}" + (f" ({self._last_error})" if self._last_error else "")

    def publish_nowait(self, topic: str, payload: str, retain: bool = False) -> None:
        """Status and events: best effort, dropped while disconnected."""
        if self.connected:
            self.client.publish(topic, payload, qos=0, retain=retain)

    def send(self, cmd: Command) -> float:
        """Deliver one command (QoS 1, PUBACK awaited); returns seconds taken. Blocking: run off the loop."""
        t0 = time.monotonic()
        if not self._connected.wait(self.command_timeout_s):
            raise MqttError(f"the message broker at {self.host}:{self.port} is not reachable")
        info = self.client.publish(cmd.topic, cmd.payload, qos=cmd.qos, retain=cmd.retain)
        left = max(0.1, self.command_timeout_s - (time.monotonic() - t0))
        try:
            info.wait_for_publish(left)
        except (RuntimeError, ValueError) as e:
            self._forget(info.mid)
            raise MqttError(f"could not send to {cmd.topic}: {e}") from None
        if not info.is_published():
            self._forget(info.mid)
            raise MqttError(f"the broker did not confirm the message to {cmd.topic} in time")
        return time.monotonic() - t0

    def _forget(self, mid: int) -> None:
        """Drop a command we have answered as failed: paho would otherwise resend it after a reconnect,
        possibly minutes late. paho has no public way to cancel a publish."""
        with self.client._out_message_mutex:
            self.client._out_messages.pop(mid, None)

    async def send_all(self, cmds) -> float:
        return sum([await asyncio.to_thread(self.send, c) for c in cmds])


def listener(url: str, topics: list[str], on_message, timeout_s: float = 5.0) -> mqtt.Client:
    """A plain client subscribed to `topics` (QoS 1), returned once the broker has confirmed the
    subscription, so nothing published afterwards is missed. For the demo, benchmarks and tests."""
    host, port, _ = parse_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(host, port)
    client.subscribe([(t, 1) for t in topics])
    client.loop_start()
    if not subscribed.wait(timeout_s):
        client.loop_stop()
        raise MqttError(f"could not subscribe at {url}")
    return client

"""The assistant's one connection to the broker (paho-mqtt in its own network thread).

It reconnects by itself with backoff and announces availability with a retained last will. A command is
sent only while connected, and only to a broker that is answering: it is delivered within
`command_timeout_s` or reported as failed, never queued to arrive minutes later.

Anything on the broker may publish anything, so every message is checked (topic, size, UTF-8) before a
handler sees it; what fails is dropped and counted in `rejected`. No callback can end the network thread;
should it end anyway, a supervisor starts it again, and `healthy()` says when a restart of the whole
service is due (for the systemd watchdog).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections import deque
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .mqtt_topics import MAX_TOPIC_BYTES, Rejections, filter_problem, topic_problem
from .types import Command

log = logging.getLogger(__name__)

RESTARTS_LIMIT, RESTARTS_WINDOW_S = 3, 60.0  # more network thread restarts than this: unhealthy


class MqttError(Exception):
    """A message could not be delivered. `written`: it went out unconfirmed, so the broker may still
    carry it out; otherwise it was never written."""

    def __init__(self, message: str, written: bool = False):
        super().__init__(message)
        self.written = written


def parse_url(url: str) -> tuple[str, int, bool]:
    u = urlparse(url)
    tls = u.scheme == "mqtts"
    if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
        raise MqttError(f"not an MQTT URL: {url!r} (expected mqtt://host:1883)")
    return u.hostname, u.port or (8883 if tls else 1883), tls


class MqttLink:
    def __init__(self, url: str, availability_topic: str, username: str = "", password: str = "",
                 client_id: str = "", command_timeout_s: float = 3.0, ca_file: str = "", cert_file: str = "",
                 key_file: str = "", max_payload_kb: int = 2048, supervise_s: float = 2.0):
        self.host, self.port, tls = parse_url(url)
        self.url = url
        self.availability_topic = availability_topic
        self.command_timeout_s = command_timeout_s
        self.max_payload = max_payload_kb * 1024
        # MQTT 5, to tell the broker the largest packet we take: it drops bigger ones instead of sending
        # them, so paho never buffers them (MQTT 3.1.1 has no such limit: up to 256 MB per message).
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"assistant-{uuid.uuid4().hex[:8]}")
        if username:
            self.client.username_pw_set(username, password or None)
        if tls:
            self.client.tls_set(ca_certs=ca_file or None, certfile=cert_file or None, keyfile=key_file or None)
        self.rejected = Rejections(log)  # messages from the broker that were dropped, by reason
        self._routes = MQTTMatcher()  # topic filter -> [fn(topic, payload)]: dispatch costs the topic's depth
        self._filters: dict[str, list] = {}  # the same, to renew subscriptions after a reconnect
        self._routes_lock = threading.Lock()
        self._fresh_only: set = set()  # handlers of requests, never given a retained message
        self._pending_subs: set[int] = set()  # subscriptions the broker has not acknowledged yet
        self._subs_done = threading.Condition()
        self._on_connected: list = []  # fn(), after every (re)connect: a restarted broker may have lost retained state
        self.last_message = time.monotonic()
        if availability_topic:  # none for a look at the broker that is not the assistant (doctor)
            self.client.will_set(availability_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Anything raised in a callback would end paho's network thread: the link would still look
        # connected while nothing is read or acknowledged. Every callback is guarded, paho's own catch too.
        self.client.suppress_exceptions = True
        self.client.on_connect = self._guarded(self._on_connect)
        self.client.on_disconnect = self._guarded(self._on_disconnect)
        self.client.on_subscribe = self._guarded(self._on_subscribe)
        self.client.on_message = self._guarded(self._on_message)
        self.client.on_socket_open = self._guarded(self._on_socket_open)
        self._connected = threading.Event()
        self._last_error = ""
        self._stopping = threading.Event()
        self.supervise_s = supervise_s
        self.restarts: deque[float] = deque(maxlen=RESTARTS_LIMIT + 1)  # when the network thread was started again

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Begin connecting in the background; never raises for an unreachable broker."""
        props = Properties(PacketTypes.CONNECT)
        props.MaximumPacketSize = self.max_payload + MAX_TOPIC_BYTES + 64  # + header, topic and properties
        self.client.connect_async(self.host, self.port, keepalive=30, properties=props)
        self.client.loop_start()
        threading.Thread(target=self._supervise, name="mqtt-supervisor", daemon=True).start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self.connected and self.availability_topic:
            try:
                self.client.publish(self.availability_topic, "offline", qos=1, retain=True).wait_for_publish(1)
            except (RuntimeError, ValueError):  # the broker went away since the check: nothing to tell it
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # -- staying alive ----------------------------------------------------------------------------------

    def _guarded(self, callback):
        def guarded(*args):
            try:
                callback(*args)
            except Exception:
                log.exception("an MQTT callback (%s) failed", callback.__name__)
        return guarded

    def _network_thread_alive(self) -> bool:
        thread = self.client._thread  # paho offers no other handle on its network thread
        return thread is not None and thread.is_alive()

    def _supervise(self) -> None:
        while not self._stopping.wait(self.supervise_s):
            if not self._network_thread_alive() and not self._stopping.is_set():
                self._restart()

    def _restart(self) -> None:
        self.restarts.append(time.monotonic())
        log.error("the MQTT network thread had ended; starting it again")
        self._connected.clear()
        try:
            self.client.reconnect()  # a fresh socket: the old one may hold half a handled packet
        except OSError as e:
            log.warning("reconnecting to %s failed (%s); the network thread keeps trying", self.url, e)
        self.client.loop_start()

    def healthy(self) -> bool:
        """False when the network thread is not running, or had to be started again more than
        RESTARTS_LIMIT times in RESTARTS_WINDOW_S: a restart of the whole service is due (gate the
        watchdog on this). A broker that cannot be reached is not unhealthy: a restart would not help."""
        recent = [t for t in self.restarts if time.monotonic() - t < RESTARTS_WINDOW_S]
        return self._network_thread_alive() and len(recent) <= RESTARTS_LIMIT

    # -- callbacks --------------------------------------------------------------------------------------

    @staticmethod
    def _on_socket_open(client, userdata, sock) -> None:
        """Small packets go out at once. With Nagle's algorithm a command written while the broker had not
        yet acknowledged our previous packet (a sensor's state, the probe) waited for the broker's
        delayed TCP acknowledgement: 40 ms, twice per command, in a third of the turns."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError) as e:  # not a TCP socket (a proxy's, a websocket's): nothing to do
            log.debug("TCP_NODELAY not set on the broker connection: %s", e)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._last_error = str(reason_code)
            log.warning("broker %s refused the connection: %s", self.url, reason_code)
            return
        log.info("connected to broker %s", self.url)
        if self.availability_topic:
            client.publish(self.availability_topic, "online", qos=1, retain=True)
        with self._subs_done:
            self._pending_subs.clear()  # acknowledgements for the last session will never come
        with self._routes_lock:
            topics = list(self._filters)
        for topic in topics:
            self._subscribe(topic)
        self._connected.set()
        for fn in self._on_connected:
            try:
                fn()
            except Exception:
                log.exception("an on-connect action failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self._connected.is_set() and not self._stopping.is_set():
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

    def subscribe(self, topic: str, fn, fresh_only: bool = False) -> None:
        """Call fn(topic, payload text) for every message matching topic, on the MQTT thread (keep it short).
        Subscriptions are renewed after every reconnect. `fresh_only`: not for retained messages (a request
        to act, kept by the broker, would be carried out again after every restart)."""
        if (problem := filter_problem(topic)) is not None:
            raise MqttError(f"cannot subscribe to {topic!r}: {problem}")
        if fresh_only:
            self._fresh_only.add(fn)
        with self._routes_lock:
            handlers = self._filters.setdefault(topic, [])
            handlers.append(fn)
            self._routes[topic] = handlers
        if self.connected:
            self._subscribe(topic)

    def unsubscribe(self, topic: str, fn) -> None:
        """Stop calling fn for topic; the broker subscription ends with its last handler."""
        with self._routes_lock:
            handlers = self._filters.get(topic, [])
            if fn in handlers:
                handlers.remove(fn)
            if handlers or topic not in self._filters:
                return
            del self._filters[topic], self._routes[topic]
        if self.connected:
            self.client.unsubscribe(topic)

    def topics(self) -> list[str]:
        """The topic filters followed now."""
        with self._routes_lock:
            return list(self._filters)

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
        checked = self._checked(msg)
        if checked is None:
            return
        topic, payload = checked
        with self._routes_lock:
            handlers = [fn for fns in self._routes.iter_match(topic) for fn in fns]
        if msg.retain and any(fn in self._fresh_only for fn in handlers):
            self.rejected.add(topic, "retained request ignored")
            handlers = [fn for fn in handlers if fn not in self._fresh_only]
        for fn in handlers:
            try:
                fn(topic, payload)
            except Exception:  # one bad message must not stop the others
                log.exception("handling a message on %s failed", topic)
                self.rejected.add(topic, "could not be handled")

    def _checked(self, msg) -> tuple[str, str] | None:
        """(topic, payload text) of a message fit to handle; None, counted and logged once, if not."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self.rejected.add("(not UTF-8)", "topic not UTF-8")
            return None
        if (problem := topic_problem(topic)) is not None:
            self.rejected.add(topic, f"topic {problem}")
            return None
        if len(msg.payload) > self.max_payload:  # a broker that ignores our maximum packet size
            self.rejected.add(topic, "payload over mqtt.max_payload_kb", f"{len(msg.payload)} bytes")
            return None
        try:
            return topic, msg.payload.decode("utf-8")
        except UnicodeDecodeError:
            self.rejected.add(topic, "payload not UTF-8")
            return None

    def status(self) -> str:
        if self.connected:
            return f"connected to {self.url}"
        return f"not connected to {self.url}" + (f" ({self._last_error})" if self._last_error else "")

    def publish_nowait(self, topic: str, payload: str, retain: bool = False) -> None:
        """Status and events: best effort, dropped while disconnected."""
        if (problem := topic_problem(topic)) is not None:
            log.warning("did not publish to %r: %s", topic, problem)
        elif self.connected:
            self.client.publish(topic, payload, qos=0, retain=retain)

    def send(self, cmd: Command) -> float:
        """Deliver one command (QoS 1, PUBACK awaited); returns seconds taken. Blocking: run off the loop.

        A hung broker (stopped, swapping) keeps its connections open and, when it wakes, carries out what
        was written to it meanwhile, long after we answered it as failed; nothing can take it back. So the
        command is written only after the broker has acknowledged a probe (our availability, QoS 1): only
        a broker that hangs within that round trip can still deliver it late."""
        t0 = time.monotonic()
        if (problem := topic_problem(cmd.topic)) is not None:
            raise MqttError(f"will not send to {cmd.topic!r}: the topic {problem}")
        if not self._connected.wait(self.command_timeout_s):
            raise MqttError(f"the message broker at {self.host}:{self.port} is not reachable")
        if self.availability_topic:
            self._confirmed(self.availability_topic, "online", 1, True, t0,
                            f"the message broker at {self.host}:{self.port} does not answer")
        self._confirmed(cmd.topic, cmd.payload, cmd.qos, cmd.retain, t0,
                        f"the broker did not confirm the message to {cmd.topic} in time", written=True)
        return time.monotonic() - t0

    def _confirmed(self, topic: str, payload: str, qos: int, retain: bool, t0: float, late: str,
                   written: bool = False) -> None:
        """Publish and wait for the acknowledgement within what is left of the command timeout since t0;
        raises MqttError(late) when it does not come."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        left = max(0.1, self.command_timeout_s - (time.monotonic() - t0))
        try:
            info.wait_for_publish(left)
        except (RuntimeError, ValueError) as e:
            self._forget(info.mid)
            raise MqttError(f"could not send to {topic}: {e}") from None
        if not info.is_published():
            self._forget(info.mid)
            raise MqttError(late, written)

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

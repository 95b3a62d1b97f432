"""Everything published on a broker, recorded: what the demo shows, what the accuracy benchmark grades and
what the tests check."""

from __future__ import annotations

import json
import threading
import time

from .mqtt_link import listener

OWN_DISCOVERY = "/voice_assistant_"  # in the topics of the assistant's own Home Assistant discovery configs


class MqttRecorder:
    """(topic, payload) pairs in the order they arrived. Device messages are all but the assistant's own:
    topics under `own` prefixes and its discovery configs."""

    def __init__(self, url: str, topics=("#",), own: tuple[str, ...] = ("assistant/",)):
        self.own = own
        self.messages: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._devices: list[tuple[str, str]] = []
        self._taken = 0  # device messages already handed out by take()
        self.client = listener(url, list(topics), self._on_message)

    def _on_message(self, client, userdata, msg):
        message = (msg.topic, msg.payload.decode(errors="replace"))
        with self.lock:
            self.messages.append(message)
            if not msg.topic.startswith(self.own) and OWN_DISCOVERY not in msg.topic:
                self._devices.append(message)

    def on(self, topic: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p in self.messages if t == topic]

    def device_messages(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self._devices)

    def take(self, count: int, timeout_s: float = 2.0) -> dict[str, dict]:
        """The device messages since the last take, by topic, once `count` of them have arrived (the
        ones the assistant says it published, acknowledged by the broker) or `timeout_s` has passed."""
        end = time.monotonic() + timeout_s
        while len(self._devices) - self._taken < count and time.monotonic() < end:
            time.sleep(0.005)
        with self.lock:
            new = self._devices[self._taken:]
            self._taken += len(new)
        return {t: json.loads(p) for t, p in new}

    def settle(self, seconds: float = 0.3) -> None:
        """Let messages still on their way arrive."""
        time.sleep(seconds)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def __enter__(self) -> "MqttRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

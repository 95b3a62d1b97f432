"""Random and adversarial traffic from another client on the broker, in batches, to one running
assistant: announcements, bridge lists, states, and requests to speak or mute. After every batch the
assistant has taken its requests, a known light can still be switched by a spoken-style request,
nothing was sent where no legitimate device is, nothing reached the lock, and paho's network thread
is alive."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from conftest import run
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_broker_trust import KITCHEN, image_mosquitto_conf, load, started
from test_home_live import wait_for

from assistant.audio.io import FileSource
from assistant.broker import LocalBroker
from assistant.home import dialects
from assistant.home.actions import plan
from assistant.home.live import Home
from assistant.mqtt_link import MqttLink
from assistant.mqtt_recorder import MqttRecorder
from assistant.mqtt_topics import topic_problem
from assistant.pipeline import Assistant
from assistant.samples import silence
from assistant.types import Intent

MAX_PAYLOAD_KB = 16
LOCK_ROOT = "zigbee2mqtt/front_door"

# Strings that are topics, almost topics, or anything at all.
topics = st.one_of(
    st.sampled_from(["a", "lights/+/set", "x/#", "", "a//b", "/", "a\0b", "$SYS/x", "zigbee2mqtt/kitchen_light/set",
                     f"{LOCK_ROOT}/set", f"{LOCK_ROOT}/set/state", LOCK_ROOT, "cmnd/front_door/POWER", "x" * 600]),
    st.text(alphabet="ab/+#\0~ ", max_size=8),
    st.text(max_size=12),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), topics)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                             max_size=3), max_leaves=8)
names = st.sampled_from(["porch", "front door", "kitchen light", "garden light", "x"]) | scalars

ha_configs = st.fixed_dictionaries({"name": names, "command_topic": topics}, optional={
    "state_topic": topics | values, "availability_topic": topics | values, "brightness_command_topic": topics,
    "brightness_state_topic": topics, "payload_on": values, "payload_lock": values, "schema": st.sampled_from(
        ["json", "default", "template", 5]), "~": topics, "cmd_t": topics, "availability": values, "device": values,
    "brightness_scale": scalars, "object_id": names})
ieee = st.sampled_from(["0x1", "0x2", "0x3", "0x4"]) | scalars
z2m_devices = st.lists(st.fixed_dictionaries({"friendly_name": topics | names, "ieee_address": ieee}, optional={
    "definition": st.fixed_dictionaries({"exposes": st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["light", "switch", "lock", "cover", "sensor"])}, optional={"features": values}),
        max_size=2)}) | values}), max_size=5)
z2m_groups = st.lists(st.fixed_dictionaries({"friendly_name": topics | names}, optional={
    "members": st.lists(st.fixed_dictionaries({"ieee_address": ieee}), max_size=4) | values}), max_size=4)
node = st.sampled_from(["n1", "n2", "n3", "voice_assistant_x", "a/b"])
component = st.sampled_from(["light", "switch", "lock", "cover", "alarm_control_panel"])

raw = st.one_of(
    st.binary(max_size=40),  # mostly not UTF-8
    st.just(b"x" * (MAX_PAYLOAD_KB * 1024 + 1)),
    st.just(b"[" * 5000 + b"]" * 5000),  # deeper than json will go
    st.just(b""),
    values.map(lambda v: json.dumps(v).encode()),
)
messages = st.one_of(
    st.tuples(st.builds("homeassistant/{}/{}/config".format, component, node), ha_configs.map(json.dumps)),
    st.tuples(st.builds("homeassistant/{}/{}/config".format, component, node), raw),
    st.tuples(st.just("zigbee2mqtt/bridge/devices"), z2m_devices.map(json.dumps) | raw),
    st.tuples(st.just("zigbee2mqtt/bridge/groups"), z2m_groups.map(json.dumps) | raw),
    st.tuples(st.sampled_from(["zigbee2mqtt/kitchen_light", "zigbee2mqtt/kitchen_light/availability", "a", "x",
                               "zigbee2mqtt/front_door"]), raw | st.sampled_from(["ON", "online", '{"state": "ON"}'])),
    st.tuples(st.just("assistant/test/say"), raw | st.sampled_from(['{"text": 5}', '{"text": "Hi."}', "Hello."])),
    st.tuples(st.just("assistant/test/mute/set"), raw | st.sampled_from(["ON", "off", "maybe"])),
)
batches = st.lists(st.tuples(messages, st.booleans()), min_size=15, max_size=30)  # many per round trip


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, engines):
    """An assistant on the image's broker set-up (silent, templates only), a client to be anyone else,
    and every topic the link sends to."""
    with LocalBroker(extra=image_mosquitto_conf()) as b:
        cfg = load(tmp_path_factory.mktemp("fuzz"), url=b.url)
        cfg.mqtt.max_payload_kb = MAX_PAYLOAD_KB
        cfg.llm.route = "templates"
        link = MqttLink.from_config(cfg.mqtt, "assistant/test/availability")
        sent = []
        publish = link.client.publish
        link.client.publish = lambda topic, *a, **k: (sent.append(topic), publish(topic, *a, **k))[1]
        a = Assistant(cfg, engines, link)
        started(link)
        other = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        other.connect("127.0.0.1", b.port)
        other.loop_start()
        spy = MqttRecorder(b.url, [KITCHEN])
        yield a, link, other, spy, sent
        spy.close()
        other.loop_stop()
        a.close()
        link.stop()


def handled(link: MqttLink, other: mqtt.Client) -> None:
    """Until the link has handled everything the other client published before."""
    seen = threading.Event()
    mark = lambda topic, payload: seen.set()  # noqa: E731
    link.subscribe("fuzz/marker", mark)
    assert link.wait_subscribed(5)
    other.publish("fuzz/marker", "x", qos=1).wait_for_publish(5)
    assert seen.wait(10)
    link.unsubscribe("fuzz/marker", mark)


def claims_configured(d, configured: set[str]) -> bool:
    """An announced device that reaches a topic the config gave a device of its own (not a lock the
    box knows, but an announcement the registry refuses)."""
    return any(t == topic or under and t.startswith(topic + "/") for topic, under in dialects.reach(d)
               for t in configured)


def lock_topics(home: Home) -> tuple[set[str], set[str]]:
    """Command topics of every lock, cover or alarm ever announced or configured, and the Zigbee2MQTT roots,
    but for announced ones claiming a configured device's topic."""
    mine = {t for d in home.registry.configured.values() for t in dialects.command_topics(d)}
    announced = [d for ds in home.registry.discovered.values() for d in ds if not claims_configured(d, mine)]
    devices = [*home.registry.configured.values(), *announced]
    confirmed = [d for d in devices if d.domain in ("lock", "cover", "alarm_control_panel")]
    exact = {t for d in confirmed for t in dialects.command_topics(d)}
    roots = {f"{d.address['base_topic']}/{d.address['friendly_name']}" for d in confirmed if d.dialect == "zigbee2mqtt"}
    return exact, roots


def test_hostile_traffic_never_stops_misleads_or_hijacks(fuzzed):
    a, link, other, spy, sent = fuzzed
    home = a.home
    count = {"messages": 0, "batches": 0}

    @settings(max_examples=100, derandomize=True, deadline=None, database=None, phases=(Phase.generate,),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batch=batches)
    def batch_keeps_the_home_safe(batch):
        retained = set()
        for (topic, payload), retain in batch:
            other.publish(topic, payload, qos=0, retain=retain)
            if retain:
                retained.add(topic)
        handled(link, other)
        count["messages"] += len(batch)
        count["batches"] += 1
        run(a.run(FileSource(pcm=silence(0.1))))  # takes mute and announcements, between turns

        sent.clear()
        for domain in ("light", "switch"):  # every light and switch the home now has, as "turn off all the ..."
            out = plan(Intent("HassTurnOff", "turn off all", all_devices=True, domain=domain), home.registry,
                       home.states)
            for c in out.commands:
                link.send(c)
        assert run(a.handle_text("Turn on the kitchen light.")).ok  # the known light still answers
        exact, roots = lock_topics(home)
        for t in sent:
            assert topic_problem(t) is None, t
            assert t not in exact and not any(t == r or t.startswith(r + "/") for r in roots), t
        assert wait_for(lambda: spy.on(KITCHEN)[-1:] == [{"state": "ON"}])
        with spy.lock:
            spy.messages.clear()
        assert link.healthy() and link.connected

        for topic in retained:
            other.publish(topic, "", qos=0, retain=True)
        handled(link, other)

    t0 = time.monotonic()
    batch_keeps_the_home_safe()
    took = time.monotonic() - t0
    print(f"fuzz: {count['messages']} messages in {count['batches']} batches, {took:.1f} s; "
          f"rejected {link.rejected.total} ({link.rejected.summary()})")
    assert count["messages"] >= 1500 and link.rejected.total > 0

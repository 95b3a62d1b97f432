"""Broken or hostile traffic on the broker, from any client: it never stops the link, never reaches a
lock unasked, and never costs more than the announcement itself."""

from __future__ import annotations

import json
import re
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import ROOT, run
from test_home_live import wait_for

from assistant import config
from assistant.broker import LocalBroker
from assistant.home.live import Home
from assistant.mqtt_link import MqttLink
from assistant.mqtt_recorder import MqttRecorder
from assistant.pipeline import Assistant, Engines
from assistant.types import Command

HOME = """
site = "test"
[[device]]
name = "kitchen light"
friendly_name = "kitchen_light"
[[device]]
name = "front door"
domain = "lock"
friendly_name = "front_door"
"""
KITCHEN = "zigbee2mqtt/kitchen_light/set"


def image_mosquitto_conf() -> str:
    return (ROOT / "image/mosquitto/assistant.conf").read_text()


@pytest.fixture(scope="module")
def trust_broker():
    """Set up like the image's broker."""
    with LocalBroker(extra=image_mosquitto_conf()) as b:
        yield b


def load(tmp_path: Path, extra: str = "", url: str = "") -> config.Config:
    p = tmp_path / "home.toml"
    p.write_text(HOME + extra)
    cfg = config.load(p)
    cfg.mqtt.url = url or cfg.mqtt.url
    return cfg


def started(link: MqttLink) -> MqttLink:
    link.start()
    assert link.wait_connected(5) and link.wait_subscribed(5)
    return link


@pytest.fixture
def publisher(trust_broker):
    """A client like any other on the broker; what it leaves retained is cleared afterwards."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", trust_broker.port)
    c.loop_start()
    retained = set()

    def publish(topic, payload, retain=False):
        c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
        if retain:
            retained.add(topic)

    yield publish
    for t in retained:
        c.publish(t, "", qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


@pytest.fixture
def assistant(trust_broker, tmp_path):
    """An assistant on the small home above, and a spy on every topic."""
    made = []

    def make(extra: str = ""):
        cfg = load(tmp_path, extra, trust_broker.url)
        link = MqttLink.from_config(cfg.mqtt, "assistant/test/availability")
        a = Assistant(cfg, Engines(), link)
        made.append((a, link))
        started(link)
        return a, link

    spy = MqttRecorder(trust_broker.url)
    yield make, spy
    for a, link in made:
        a.close()
        link.stop()
    spy.close()


def announced(a, device_id: str, present: bool = True) -> bool:
    return wait_for(lambda: (a.home.registry.get(device_id) is not None) == present)


def marker(publish, link: MqttLink) -> None:
    """Until everything published before has been handled by the link."""
    seen = threading.Event()
    link.subscribe("trust/marker", lambda t, p: seen.set())
    link.wait_subscribed(5)
    publish("trust/marker", "x")
    assert seen.wait(5)


# -- finding 1: a bad retained config must not end paho's thread -------------------------------------------

@pytest.mark.parametrize("state_topic", [5, "x/a+b", ["a", "b"], "x/a\u0007b"])
@pytest.mark.slow  # starts mosquitto itself
def test_bad_retained_config_does_not_stop_the_link(state_topic, tmp_path):
    with LocalBroker() as b:  # restarted below, so its own
        cfg = load(tmp_path, url=b.url)
        cfg.mqtt.command_timeout_s = 2.0
        link = MqttLink.from_config(cfg.mqtt, "assistant/test/availability")
        home = Home(cfg)
        home.attach(link)
        started(link)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        c.publish("homeassistant/light/x/config", json.dumps(
            {"name": "x", "command_topic": "a", "state_topic": state_topic}), qos=1, retain=True).wait_for_publish(5)
        c.publish("zigbee2mqtt/kitchen_light", '{"state": "ON"}', qos=1).wait_for_publish(5)
        assert wait_for(lambda: home.states.get("kitchen_light").on is True), "state tracking stopped"
        b.stop()  # and back: the reconnect renews every subscription
        assert wait_for(lambda: not link.connected)
        b.start()
        assert wait_for(lambda: link.connected, 35)
        spy = MqttRecorder(b.url)
        try:
            link.send(Command("kitchen_light", KITCHEN, '{"state": "OFF"}'))
            assert wait_for(lambda: spy.on(KITCHEN) == [{"state": "OFF"}])
        finally:
            spy.close()
            c.loop_stop()
            link.stop()
        assert home.registry.get("x") is None and link.rejected.total >= 1


# -- finding 2: discovery is no way around confirmation ------------------------------------------------------

GARDEN = {"name": "garden light", "command_topic": "zigbee2mqtt/front_door/set", "payload_on": '{"state":"UNLOCK"}'}


def test_discovered_switch_on_the_locks_topic_is_refused(assistant, publisher):
    make, spy = assistant
    a, link = make()
    publisher("homeassistant/switch/garden/config", json.dumps(GARDEN), retain=True)
    marker(publisher, link)
    out = run(a.handle_text("turn on the garden light"))
    assert not out.ok
    time.sleep(0.3)
    assert not [t for t, _ in spy.device_messages() if t.startswith("zigbee2mqtt/front_door")]
    assert link.rejected.counts["commands reach a confirmed device"] == 1


def test_a_lock_announced_later_removes_the_switch_on_its_topic(assistant, publisher):
    make, spy = assistant
    a, link = make()
    publisher("homeassistant/switch/shed/config", json.dumps(
        {"name": "shed light", "command_topic": "shed/lock/set"}), retain=True)
    assert announced(a, "shed_light")
    publisher("homeassistant/lock/shed/config", json.dumps(
        {"name": "shed door", "command_topic": "shed/lock/set"}), retain=True)
    assert announced(a, "shed_light", present=False)
    assert a.home.registry.get("shed_door").domain == "lock"
    out = run(a.handle_text("unlock the shed door"))  # a discovered lock is asked about, like a configured one
    assert not out.ok and out.reply.startswith("Should I")
    publisher("homeassistant/lock/shed/config", "", retain=True)  # the lock goes: the switch may come back
    assert announced(a, "shed_light")


def test_an_announced_lock_cannot_claim_a_configured_lights_topic(assistant, publisher):
    """The config says what is on a topic; a lock announced there (found by the fuzz test) would make
    every command to the kitchen light count as reaching a lock."""
    make, spy = assistant
    a, link = make()
    publisher("homeassistant/lock/fake/config", json.dumps(
        {"name": "cellar door", "command_topic": KITCHEN}), retain=True)
    marker(publisher, link)
    assert a.home.registry.get("cellar_door") is None
    assert link.rejected.counts["claims a configured device's topic"] == 1
    assert run(a.handle_text("turn on the kitchen light")).ok
    assert wait_for(lambda: spy.on(KITCHEN) == [{"state": "ON"}])
    publisher("homeassistant/lock/fake/config", "", retain=True)


# -- finding 3: a wildcard in a discovered command topic ------------------------------------------------------

def test_wildcard_command_topic_does_not_crash_a_whole_home_command(assistant, publisher):
    make, spy = assistant
    a, link = make()
    publisher("homeassistant/light/porch/config", json.dumps({"name": "porch light", "command_topic": "lights/+/set"}),
              retain=True)
    marker(publisher, link)
    out = run(a.handle_text("turn off all the lights"))
    assert out.ok, out.reply
    assert wait_for(lambda: spy.on(KITCHEN) == [{"state": "OFF"}])
    assert link.rejected.counts["topic contains a wildcard (+ or #)"] == 1


# -- finding 10: Zigbee2MQTT groups ---------------------------------------------------------------------------

Z2M_DEVICES = [
    {"friendly_name": "hall_ceiling", "ieee_address": "0x1", "definition": {"exposes": [{"type": "light"}]}},
    {"friendly_name": "hall_spot", "ieee_address": "0x2", "definition": {"exposes": [{"type": "light"}]}},
    {"friendly_name": "back_door", "ieee_address": "0x3", "definition": {"exposes": [{"type": "lock"}]}},
]
SPOOFED_GROUPS = [
    {"friendly_name": "back_door", "members": [{"ieee_address": "0x1"}, {"ieee_address": "0x2"}]},
    {"friendly_name": "everything", "members": [{"ieee_address": a} for a in ("0x1", "0x2", "0x3")]},
]


def test_spoofed_groups_do_not_catch_whole_home_commands(assistant, publisher):
    make, spy = assistant
    a, link = make()
    publisher("zigbee2mqtt/bridge/devices", json.dumps(Z2M_DEVICES), retain=True)
    publisher("zigbee2mqtt/bridge/groups", json.dumps(SPOOFED_GROUPS), retain=True)
    marker(publisher, link)
    out = run(a.handle_text("turn off all the lights"))
    topics = sorted(c.topic for c in out.commands)
    assert topics == ["zigbee2mqtt/hall_ceiling/set", "zigbee2mqtt/hall_spot/set", KITCHEN]
    assert link.rejected.counts["group member not a known light"] == 1
    assert link.rejected.counts["group takes a device's topic"] == 1  # the lock's


def test_a_real_group_of_lights_is_still_used(assistant, publisher):
    make, spy = assistant
    a, link = make()
    publisher("zigbee2mqtt/bridge/devices", json.dumps(Z2M_DEVICES), retain=True)
    publisher("zigbee2mqtt/bridge/groups", json.dumps([SPOOFED_GROUPS[0] | {"friendly_name": "hall"}]), retain=True)
    assert announced(a, "hall")
    out = run(a.handle_text("turn off all the lights"))
    assert sorted(c.topic for c in out.commands) == ["zigbee2mqtt/hall/set", KITCHEN]


# -- finding 10: size ---------------------------------------------------------------------------------------

def test_oversize_messages_never_reach_the_client(trust_broker, tmp_path, publisher):
    cfg = load(tmp_path, url=trust_broker.url)
    cfg.mqtt.max_payload_kb = 64
    link = MqttLink.from_config(cfg.mqtt, "assistant/test/availability")
    delivered = []
    handle = link.client.on_message
    link.client.on_message = lambda c, u, m: (delivered.append(len(m.payload)), handle(c, u, m))
    Home(cfg).attach(link)
    started(link)
    try:
        publisher("zigbee2mqtt/kitchen_light", "x" * 200_000)  # over 64 KB: the broker keeps it from us
        publisher("zigbee2mqtt/kitchen_light", "x" * 60_000)  # under: arrives, and is no state
        marker(publisher, link)
        assert 60_000 in delivered and max(delivered) < 64 * 1024
        assert link.healthy()
    finally:
        link.stop()


@pytest.mark.slow  # starts mosquitto itself
def test_the_image_broker_refuses_oversize_packets(tmp_path):
    limit = int(next(line.split()[1] for line in image_mosquitto_conf().splitlines()
                     if line.startswith("max_packet_size")))
    assert limit <= 4 * 1024 * 1024
    with LocalBroker(extra=f"max_packet_size {limit}\n") as b:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        gone = threading.Event()
        c.on_disconnect = lambda *a: gone.set()
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        c.publish("zigbee2mqtt/kitchen_light", "x" * (limit + 1), qos=1)
        assert gone.wait(5)  # mosquitto hangs up on a client that sends a packet over the limit
        c.loop_stop()


# -- finding 7: cost per announcement, not per home --------------------------------------------------------

def test_two_thousand_announcements_are_cheap_and_leave_nothing_behind(trust_broker, tmp_path, publisher):
    n = 2000
    for i in range(n):
        publisher(f"homeassistant/light/bulk{i}/config", json.dumps(
            {"name": f"bulk {i}", "command_topic": f"bulk/{i}/set", "state_topic": f"bulk/{i}/state"}), retain=True)
    cfg = load(tmp_path, url=trust_broker.url)
    link = MqttLink.from_config(cfg.mqtt, "assistant/test/availability")
    home = Home(cfg)
    home.attach(link)
    cpu = time.process_time()
    started(link)
    try:
        assert wait_for(lambda: len(home.registry.devices) == n + 2, 60)
        ingest = time.process_time() - cpu
        print(f"{n} announcements ingested in {ingest:.2f} s of CPU")
        assert ingest < 3.0
        assert unrelated_message_s(link) < 0.001
        for i in range(n):
            publisher(f"homeassistant/light/bulk{i}/config", "", retain=True)
        assert wait_for(lambda: len(home.registry.devices) == 2, 60)
        assert not [t for t in link.topics() if t.startswith("bulk/")]  # their state topics are let go
        assert unrelated_message_s(link) < 0.001
    finally:
        link.stop()


def unrelated_message_s(link: MqttLink, times: int = 1000) -> float:
    """What a message that concerns no device costs the link, handed to it as paho would."""
    msg = mqtt.MQTTMessage(topic=b"homeassistant/light/bulk7/attributes")
    msg.payload = b"{}"
    t0 = time.perf_counter()
    for _ in range(times):
        link.client.on_message(link.client, None, msg)
    took = (time.perf_counter() - t0) / times
    print(f"an unrelated message costs {took * 1e6:.0f} us")
    return took


# -- finding 8: topics in the config ----------------------------------------------------------------------

@pytest.mark.parametrize("extra, key", [
    ('site = "kitchen #2"\n', "'site'"),
    ('site = "a/b"\n', "'site'"),
    ('[mqtt]\ntopic_prefix = "home/+"\n', "'mqtt.topic_prefix'"),
    ('[[device]]\nname = "lamp"\ndialect = "ha_json"\ncommand_topic = "lamp/#"\n', "'device[2].command_topic'"),
    ('[[device]]\nname = "lamp"\ndialect = "ha_json"\ncommand_topic = "lamp/set"\nstate_topic = "lamp/\\u0000"\n',
     "'device[2].state_topic'"),
    ('[[device]]\nname = "lamp"\nfriendly_name = "lamp//x"\n', "'device[2].friendly_name'"),
    ('[[device]]\nname = "lamp"\ndialect = "tasmota"\ntopic = "plug+1"\n', "'device[2].topic'"),
    ('[discovery]\nallow = ["zigbee2mqtt/#/set"]\n', "'discovery.allow[0]'"),
])
def test_topics_in_the_config_are_checked(tmp_path, extra, key):
    body = HOME.replace('site = "test"\n', "")
    text = extra + body if extra.startswith("site") else body + extra
    p = tmp_path / "home.toml"
    p.write_text(text)
    tomllib.loads(text)  # the TOML itself is fine: the topic is the problem
    with pytest.raises(config.ConfigError, match=re.escape(f"{p}: {key}")):
        config.load(p)


# -- the allow list, removal, and the supervisor ----------------------------------------------------------

def test_discovery_allow_limits_what_discovered_devices_may_command(assistant, publisher):
    make, spy = assistant
    a, link = make('[discovery]\nallow = ["zigbee2mqtt/+/set"]\n')
    publisher("homeassistant/light/attic/config", json.dumps({"name": "attic light", "command_topic": "attic/set"}),
              retain=True)
    publisher("homeassistant/light/loft/config", json.dumps(
        {"name": "loft light", "schema": "json", "command_topic": "zigbee2mqtt/loft/set"}), retain=True)
    assert announced(a, "loft_light")
    assert a.home.registry.get("attic_light") is None
    assert link.rejected.counts["command topic not in discovery.allow"] == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the end it is made to have
def test_network_thread_that_ends_is_started_again(trust_broker, tmp_path):
    cfg = load(tmp_path, url=trust_broker.url)
    link = MqttLink(trust_broker.url, "assistant/test/availability", supervise_s=0.2)
    Home(cfg).attach(link)
    started(link)
    spy = MqttRecorder(trust_broker.url)
    try:
        handle = link.client.on_message
        link.client.suppress_exceptions = False

        def boom(client, userdata, msg):  # what a bug in paho or a handler would do
            link.client.on_message = handle
            raise RuntimeError("boom")

        link.client.on_message = boom
        spy.client.publish("zigbee2mqtt/kitchen_light", '{"state": "ON"}', qos=1)
        assert wait_for(lambda: len(link.restarts) == 1)
        assert wait_for(link.healthy) and wait_for(lambda: link.connected)
        link.send(Command("kitchen_light", KITCHEN, '{"state": "ON"}'))
        assert wait_for(lambda: spy.on(KITCHEN) == [{"state": "ON"}])
    finally:
        spy.close()
        link.stop()

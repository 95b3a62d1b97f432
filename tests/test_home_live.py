"""Discovered and configured devices on a real mosquitto, simulated like the real ones on the wire:
typed commands change their state and questions about state get correct answers."""

from __future__ import annotations

import json
import time

import pytest
from conftest import home_config, run
from home_sim import Simulator

from assistant.broker import LocalBroker
from assistant.engines.load import Engines
from assistant.mqtt_link import MqttLink
from assistant.pipeline import Assistant

HOME = """
site = "test"
[[device]]
name = "kitchen light"
area = "kitchen"
friendly_name = "kitchen_light"
[[device]]
name = "lounge lamp"
area = "living room"
dialect = "tasmota"
topic = "lounge_plug"
[[device]]
name = "desk lamp"          # also announced by discovery: the config wins
dialect = "ha_default"
command_topic = "tasmota_desk/power/set"
state_topic = "tasmota_desk/power"
payload_on = "1"
payload_off = "0"
area = "office"
[[customize]]
match = "hall ceiling"
aliases = ["big light"]
area = "hall"
[[customize]]
match = "hall spot"
area = "hall"
"""


def wait_for(cond, timeout: float = 5.0) -> bool:
    """Poll until cond() holds; the timeout only bounds a failure, it is not what the test measures."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture(scope="module")
def home_broker():
    with LocalBroker() as b:
        yield b


@pytest.fixture
def home(home_broker, tmp_path):
    sim = Simulator(home_broker.url)
    sim.announce()
    cfg = home_config(tmp_path, base=HOME)
    cfg.mqtt.url = home_broker.url
    link = MqttLink.from_config(cfg.mqtt, "assistant/test/availability")
    link.start()
    assert link.wait_connected(5)
    a = Assistant(cfg, Engines(), link)
    assert wait_for(lambda: {"porch_light", "hall_lights", "coffee_plug"} <= set(a.home.registry.devices)
                    and a.home.states.get("porch_light").on is not None)
    yield a, sim
    a.close()
    link.stop()
    sim.close()


def ask(a, text):
    return run(a.handle_text(text))


def test_discovered_and_configured_devices_are_merged(home):
    a, _ = home
    reg = a.home.registry
    assert reg.get("hall_ceiling").area == "hall" and "big light" in reg.get("hall_ceiling").aliases
    assert reg.get("porch_light").dialect == "ha_json" and reg.get("porch_light").address["brightness_scale"] == 100
    assert reg.get("porch_light").area == "garden" and reg.get("porch_light").color
    assert reg.get("coffee_plug").domain == "switch"
    assert "hall_sensor" not in reg.devices and "coordinator" not in reg.devices
    assert reg.get("desk_lamp").source == "config"  # announced too, but the config wins
    assert reg.get("hall_lights").members == ("hall_ceiling", "hall_spot")


@pytest.mark.parametrize("text, device", [
    ("turn on the big light", "hall_ceiling"),
    ("turn on the porch light", "porch"),
    ("turn on the lounge lamp", "tasmota"),
    ("turn on the coffee plug", "coffee_plug"),
    ("turn on the desk lamp", "desk"),
])
def test_commands_change_device_state(home, text, device):
    a, sim = home
    out = ask(a, text)
    assert out.ok, out.reply
    assert wait_for(lambda: sim.on(device))


def test_dialects_on_the_wire(home):
    a, sim = home
    assert ask(a, "set the lounge lamp to 40 percent").ok
    assert ask(a, "set the porch light to 50 percent").ok
    assert ask(a, "set the desk lamp to 50 percent").ok  # configured without a brightness topic: just on
    assert wait_for(lambda: ("cmnd/lounge_plug/Dimmer", "40") in sim.received
                    and ("esphome/porch/light/set", json.dumps({"state": "ON", "brightness": 50})) in sim.received
                    and ("tasmota_desk/power/set", "1") in sim.received)
    assert wait_for(lambda: a.home.states.get("lounge_lamp").brightness == 40)


def test_state_questions(home):
    a, sim = home
    assert ask(a, "is the porch light on").reply == "No, the porch light is off."
    assert ask(a, "turn on the porch light").ok
    assert wait_for(lambda: a.home.states.get("porch_light").on)
    assert ask(a, "is the porch light on?").reply == "Yes, the porch light is on."
    ask(a, "turn on the lounge lamp")
    assert wait_for(lambda: a.home.states.get("lounge_lamp").on)
    assert ask(a, "which lights are on?").reply == "The lounge lamp and the porch light are on."
    assert ask(a, "are any lights on in the hall").reply.startswith("None of")


def test_toggle_and_relative_brightness(home):
    a, sim = home
    assert ask(a, "toggle the lounge lamp").ok
    assert wait_for(lambda: sim.on("tasmota") and a.home.states.get("lounge_lamp").on)
    assert ask(a, "toggle the lounge lamp").ok
    assert wait_for(lambda: not sim.on("tasmota"))
    ask(a, "set the porch light to 50 percent")
    assert wait_for(lambda: a.home.states.get("porch_light").brightness == 50)
    out = ask(a, "make the porch light brighter")
    assert out.ok and json.loads(out.commands[0].payload) == {"state": "ON", "brightness": 75}
    assert wait_for(lambda: a.home.states.get("porch_light").brightness == 75)
    out = ask(a, "dim the porch light")
    assert json.loads(out.commands[0].payload)["brightness"] == 50


def test_area_command_uses_the_zigbee_group(home):
    a, sim = home
    out = ask(a, "turn on the lights in the hall")
    assert out.ok and [c.topic for c in out.commands] == ["zigbee2mqtt/hall lights/set"]
    assert wait_for(lambda: sim.on("hall_ceiling") and sim.on("hall_spot"))
    out = ask(a, "turn off all the lights")
    topics = sorted(c.topic for c in out.commands)
    assert "zigbee2mqtt/hall lights/set" in topics and "zigbee2mqtt/hall ceiling/set" not in topics
    assert "cmnd/lounge_plug/POWER" in topics and "esphome/porch/light/set" in topics


def test_offline_device_gets_a_spoken_answer_not_a_message(home):
    a, sim = home
    sim.c.publish("esphome/porch/status", "offline", qos=1, retain=True)
    assert wait_for(lambda: a.home.states.get("porch_light").available is False)
    n = len(sim.received)
    out = ask(a, "turn on the porch light")
    assert not out.ok and "offline" in out.reply and out.commands == ()
    assert ask(a, "is the porch light on").reply == "The porch light is offline."
    time.sleep(0.2)
    assert not [t for t, _ in sim.received[n:] if t.startswith("esphome")]


def test_announcements_are_followed_live(home):
    a, sim = home
    sim.c.publish("homeassistant/light/attic/config", json.dumps(
        {"name": "Attic light", "schema": "json", "command_topic": "attic/set"}), qos=1, retain=True)
    assert wait_for(lambda: a.home.registry.get("attic_light") is not None)
    assert ask(a, "turn on the attic light").commands[0].topic == "attic/set"
    sim.c.publish("homeassistant/light/attic/config", "", qos=1, retain=True)
    assert wait_for(lambda: a.home.registry.get("attic_light") is None)
    assert "don't know" in ask(a, "turn on the attic light").reply


@pytest.mark.parametrize("topic, payload", [
    ("homeassistant/light/bad/config", "{not json"),
    ("homeassistant/light/bad/config", json.dumps({"name": "bad", "schema": "template", "command_topic": "x"})),
    ("homeassistant/light/bad/config", json.dumps(["a list"])),
    ("homeassistant/switch/bad/config", json.dumps({"name": "no topic"})),
    ("zigbee2mqtt/bridge/groups", '{"not": "a list"}'),
    ("esphome/porch/light/state", "not json at all"),
    ("stat/lounge_plug/RESULT", "\xff\xfe"),
])
def test_bad_messages_are_ignored(home, topic, payload, caplog):
    a, sim = home
    # The porch light's availability settled first: a message of its own arriving while this one is
    # checked would change its state for a reason that is not this message.
    sim.c.publish("esphome/porch/status", "online", qos=1, retain=True)
    assert wait_for(lambda: (s := a.home.states.get("porch_light")) is not None and s.available)
    before = dict(a.home.registry.devices), a.home.states.get("porch_light")
    sim.c.publish(topic, payload, qos=1).wait_for_publish(2)
    assert wait_for(lambda: any("ignored" in r.message for r in caplog.records))
    assert dict(a.home.registry.devices) == before[0] and a.home.states.get("porch_light") == before[1]
    assert ask(a, "turn on the porch light").ok

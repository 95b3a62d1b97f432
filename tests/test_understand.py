"""Typed or transcribed text to intents and MQTT commands, for the example home."""

import json

import pytest

from assistant.home.actions import plan
from assistant.home.registry import Registry
from assistant.understand.templates import TemplateUnderstander


@pytest.fixture(scope="module")
def home(example_cfg):
    reg = Registry.from_config(example_cfg.device)
    return reg, TemplateUnderstander(reg, strip_prefixes=("hey jarvis", "jarvis"))


CASES = [
    # text, {topic: payload}, words in the reply
    ("turn on the kitchen light", {"zigbee2mqtt/kitchen_light/set": {"state": "ON"}}, "Turned on the kitchen light"),
    ("Hey Jarvis, turn on the kitchen light.", {"zigbee2mqtt/kitchen_light/set": {"state": "ON"}}, "kitchen"),
    ("Jarvis switch off the sofa lamp", {"home/living_room_lamp/set": {"state": "OFF"}}, "living room lamp"),
    ("set the living room lamp to 30%", {"home/living_room_lamp/set": {"state": "ON", "brightness": 76}}, "30 percent"),
    ("set the bedroom light brightness to 100 percent", {"zigbee2mqtt/bedroom_light/set": {"state": "ON", "brightness": 254}}, "100"),
    ("make the bedroom light red", {"zigbee2mqtt/bedroom_light/set": {"state": "ON", "color": {"r": 255, "g": 0, "b": 0}}}, "red"),
    ("turn off the lights in the bedroom", {"zigbee2mqtt/bedroom_light/set": {"state": "OFF"}}, "bedroom light"),
    ("turn on the kitchen", {"zigbee2mqtt/kitchen_light/set": {"state": "ON"}}, "kitchen"),
    ("turn off all the lights", {"zigbee2mqtt/kitchen_light/set": {"state": "OFF"},
                                 "home/living_room_lamp/set": {"state": "OFF"},
                                 "zigbee2mqtt/bedroom_light/set": {"state": "OFF"}}, "all the lights"),
]


@pytest.mark.parametrize("text, expected, reply", CASES)
def test_commands(home, text, expected, reply):
    reg, u = home
    out = plan(u.understand(text), reg)
    assert out.ok
    assert {c.topic: json.loads(c.payload) for c in out.commands} == expected
    assert all(c.qos == 1 and not c.retain for c in out.commands)
    assert reply in out.reply


@pytest.mark.parametrize("text, reply", [
    ("turn on the garage heater", "I don't know any device called garage heater"),
    ("turn off the garage light", "I don't know any device called garage light"),
    ("turn on the", "Say which device or room you mean"),  # cut short: no name at all
])
def test_unknown_devices_get_words_not_messages(home, text, reply):
    reg, u = home
    out = plan(u.understand(text), reg)
    assert not out.ok and out.commands == () and out.reply.startswith(reply)


@pytest.mark.parametrize("text", ["what is the weather", "the cat sat on the mat", "", "jarvis"])
def test_non_commands_are_not_intents(home, text):
    assert home[1].understand(text) is None

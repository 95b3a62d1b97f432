"""A box that stands in an area (`area` in the config): "turn on the lights" said to it are its area's, as
Home Assistant's satellites give theirs; a named area or device wins; without an area nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import home_config, run
from test_answers import understanding

from assistant import config
from assistant.audio.io import FileSource
from assistant.engines.base import Hypothesis
from assistant.home.live import Home
from assistant.samples import piper, utterance
from assistant.understand import llm
from assistant.understand.rescore import choose, heard_verb, meaning, to_check
from assistant.understand.understanding import Understanding, Verdict

# Two lights and a switch in the kitchen, two lamps in the living room, one light in the bedroom.
HOME = """
site = "rooms"
[mqtt]
url = "mqtt://127.0.0.1:1883"

[[device]]
name = "kitchen light"
area = "kitchen"
friendly_name = "kitchen_light"

[[device]]
name = "kitchen spots"
area = "kitchen"
friendly_name = "kitchen_spots"

[[device]]
name = "kettle"
area = "kitchen"
domain = "switch"
friendly_name = "kettle"

[[device]]
name = "living room lamp"
aliases = ["sofa lamp"]
area = "living room"
dialect = "ha_json"
command_topic = "home/living_room_lamp/set"

[[device]]
name = "reading lamp"
area = "living room"
friendly_name = "reading_lamp"

[[device]]
name = "bedroom light"
area = "bedroom"
friendly_name = "bedroom_light"
"""
Z = "zigbee2mqtt/{}/set"
TOPICS = {"kitchen": {Z.format("kitchen_light"), Z.format("kitchen_spots")},
          "living room": {"home/living_room_lamp/set", Z.format("reading_lamp")},
          "bedroom": {Z.format("bedroom_light")}}
LIGHTS = set().union(*TOPICS.values())


def box(tmp_path: Path, area: str = "") -> config.Config:
    """The home above, as said to a box in `area` (none when empty)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return home_config(tmp_path, base=(f'area = "{area}"\n' if area else "") + HOME)


@pytest.fixture(scope="module")
def boxes(tmp_path_factory) -> dict[str, Understanding]:
    """A box in each room, and one in no room, on the same home."""
    out = {}
    for area in ("kitchen", "living room", "bedroom", ""):
        out[area] = understanding(box(tmp_path_factory.mktemp("home"), area), tmp_path_factory.mktemp("state"))
    return out


def switched(u: Understanding, text: str) -> tuple[Verdict, dict[str, dict], str]:
    u.forget()
    d = u.read(text)
    return d.verdict, {c.topic: json.loads(c.payload) for c in d.outcome.commands}, d.outcome.reply


@pytest.mark.parametrize("area", ["kitchen", "living room"])
@pytest.mark.parametrize("text, payload", [
    ("turn on the lights", {"state": "ON"}),
    ("turn on the light", {"state": "ON"}),
    ("Hey Jarvis, switch the lights off.", {"state": "OFF"}),
    ("turn off the light", {"state": "OFF"}),
    ("set the lights to 40 percent", {"state": "ON", "brightness": 102}),
    ("set the brightness to 40%", {"state": "ON", "brightness": 102}),
    ("dim the lights", None),
    ("make it brighter", None),
    ("turn the lights red", {"state": "ON", "color": {"r": 255, "g": 0, "b": 0}}),
    ("toggle the lights", None),
])
def test_the_lights_are_the_boxs_own_areas(boxes, area, text, payload):
    verdict, sent, reply = switched(boxes[area], text)
    assert verdict is Verdict.ACT and set(sent) == TOPICS[area], (text, reply)  # its lights, not the kettle
    if payload is not None:
        for topic, p in sent.items():  # the Home Assistant JSON lamp gets the same on a 0..255 scale too
            assert p == payload or (topic.startswith("home/") and p["state"] == payload["state"])
    assert area in reply


@pytest.mark.parametrize("area, text, reply", [
    ("kitchen", "turn on the lights", "Turned on the kitchen lights."),
    ("living room", "turn off the light", "Turned off the living room lights."),
    ("bedroom", "turn on the lights", "Turned on the bedroom light."),  # its one light, by name
    ("kitchen", "set the lights to 40 percent", "Set the kitchen lights to 40 percent."),
])
def test_the_reply_says_which(boxes, area, text, reply):
    assert switched(boxes[area], text)[2] == reply


@pytest.mark.parametrize("text, room", [
    ("turn on the bedroom light", "bedroom"),
    ("turn off the lights in the living room", "living room"),
    ("set the sofa lamp to 30 percent", None),
    ("dim the living room lights", "living room"),
    ("turn on the reading lamp", None),
])
def test_a_named_area_or_device_wins_over_the_boxs(boxes, text, room):
    verdict, sent, _ = switched(boxes["kitchen"], text)
    assert verdict is Verdict.ACT and sent
    assert not set(sent) & TOPICS["kitchen"]
    if room:
        assert set(sent) == TOPICS[room]


def test_all_the_lights_are_still_all_of_them(boxes):
    verdict, sent, reply = switched(boxes["kitchen"], "turn off all the lights")
    assert verdict is Verdict.ACT and set(sent) == LIGHTS and reply == "Turned off all the lights."


def test_without_an_area_the_lights_mean_what_they_did(boxes):
    """No area configured: "turn on the lights" switches nothing (the templates name no device), and
    "turn off the lights" is snapped onto "turn off all the lights", as before the box had an area."""
    u = boxes[""]
    assert u.here == "" and u.templates.context is None
    verdict, sent, reply = switched(u, "turn on the lights")
    assert sent == {} and reply.startswith("I don't know any device")
    for text in ("set the lights to 40 percent", "make it brighter"):
        assert switched(u, text)[1] == {}
    verdict, sent, _ = switched(u, "turn off the lights")
    assert verdict is Verdict.ACT and set(sent) == LIGHTS


def test_a_misheard_command_is_snapped_onto_the_boxs_area(boxes):
    u = boxes["living room"]
    intent = u.lookup("turn on the lihgts")
    assert intent.source == "fuzzy" and intent.area == "living room" and intent.confidence >= 0.8
    assert "turn on the lights" in u.templates.snap.here
    assert not boxes[""].templates.snap.here


def checked(u: Understanding, *texts: str) -> list[str]:
    """The home's sentences the close listening would weigh on the audio for these free readings."""
    r = [Hypothesis(t, -0.4 - 0.1 * i) for i, t in enumerate(texts)]
    _, intent = choose(r, u.lookup)
    return to_check(r, intent, False, heard_verb(r), u.templates, u.lookup)


def test_the_close_listening_weighs_the_area_less_sentences_as_the_boxs_area(boxes):
    """What the audio is checked against: the box's "turn on the lights", which means the same as "turn
    on the kitchen lights" (no rival of it); in a box with no area, not at all."""
    u = boxes["kitchen"]
    assert "turn on the lights" in checked(u, "Turn on the lice.", "Turn on the lies.")
    assert meaning(u.lookup("turn on the lights"), u.registry) == meaning(u.lookup("turn on the kitchen lights"),
                                                                           u.registry)
    assert "turn on the lights" not in checked(boxes[""], "Turn on the lice.", "Turn on the lies.")


def test_a_snap_never_takes_a_named_room_for_the_boxs(boxes):
    """Close in words to "set the lights to 40 percent", but it names the bedroom."""
    for area in ("kitchen", "living room"):
        intent = boxes[area].lookup("set the lights to 40 percent in the bedroom")
        assert intent is None or intent.area != area


def test_a_box_whose_area_has_no_lights_yet_says_so(tmp_path):
    """The hall's light is a discovered one, named ahead by [[customize]], not announced yet."""
    hall = '\n[[customize]]\nmatch = "hall ceiling"\narea = "hall"\n'
    cfg = home_config(tmp_path, hall, base='area = "hall"\n' + HOME)
    verdict, sent, reply = switched(understanding(cfg, tmp_path / "state"), "turn on the lights")
    assert sent == {} and reply == "There are no lights in the hall."


# -- on the broker: typed, and spoken through the pipeline --------------------------------------------

def sent_since(spy) -> dict[str, dict]:
    """The device messages since the last look, by topic."""
    spy.settle()
    return spy.take(0)


def test_typed_the_lights_switch_only_the_boxs_area_on_the_broker(make_assistant, spy, tmp_path):
    for area in ("kitchen", "living room"):
        a, _, _ = make_assistant(box(tmp_path / area, area))
        for text in ("turn on the lights", "turn on the light"):
            out = run(a.handle_text(text))
            sent = sent_since(spy)
            assert out.ok and set(sent) == TOPICS[area], (area, text, out.reply, sent)
            assert all(p["state"] == "ON" for p in sent.values())
        assert run(a.handle_text("turn off the bedroom light")).ok  # named: the bedroom's, wherever the box is
        assert set(sent_since(spy)) == TOPICS["bedroom"]


def test_typed_the_lights_on_a_box_in_no_area_switch_nothing(make_assistant, spy, tmp_path):
    a, _, _ = make_assistant(box(tmp_path))
    out = run(a.handle_text("turn on the lights"))
    assert not out.ok and sent_since(spy) == {}


def test_home_assistants_requests_are_not_taken_as_the_boxs_room(make_assistant, store, spy, tmp_path):
    """Home Assistant sends what its satellites heard, in any room: its understanding has no area."""
    from assistant.wyoming_services import Services

    a, _, _ = make_assistant(box(tmp_path, "kitchen"))
    services = Services(a, store)
    assert services.understanding.here == "" and a.understanding.here == "kitchen"
    assert services.understanding.read("turn on the lights").outcome.commands == ()
    assert set(d.device_id for d in a.understanding.read("turn on the lights").outcome.commands) == {
        "kitchen_light", "kitchen_spots"}


@pytest.mark.parametrize("area, said", [("kitchen", "Turn on the lights."), ("living room", "Turn on the light.")])
def test_spoken_the_lights_switch_only_the_boxs_area(store, make_assistant, spy, tmp_path, area, said):
    a, _, events = make_assistant(box(tmp_path, area))
    run(a.run(FileSource(pcm=utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, said), 1.0))))
    sent = sent_since(spy)
    heard = [e.data["text"] for e in events if e.kind == "transcript"]
    assert set(sent) == TOPICS[area], (heard, sent)
    assert all(p["state"] == "ON" for p in sent.values())


# -- the LLM: the box's room in the prompt, and in what a request may act on ---------------------------

class Scripted:
    """A backend that answers one line and keeps the prompts it was given."""

    name, constrains = "scripted", False

    def __init__(self, line: str):
        self.line, self.prompts = line, []

    def stream(self, system, user, max_tokens, stop, **_):
        self.prompts.append(user)
        yield self.line

    def close(self):
        pass


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    return Home(box(tmp_path_factory.mktemp("home"))).registry


KITCHEN_LIGHTS = ("kitchen_light", "kitchen_spots")


@pytest.mark.parametrize("text, here, ids, every, by_room", [
    ("put the lights on", "kitchen", KITCHEN_LIGHTS, False, True),  # not the kettle: "lights" is not its noun
    ("the light please", "living room", ("living_room_lamp", "reading_lamp"), False, True),
    ("put the lights on", "", (), True, False),  # no area: the lights are all of them, as before
    ("put the light on", "", (), False, False),
    ("put the bedroom light on", "kitchen", ("bedroom_light",), False, False),  # a named device wins
    ("the living room lights, please", "kitchen", ("living_room_lamp", "reading_lamp"), False, False),  # an area too
    ("everything off", "kitchen", (), True, False),
    ("the lights off except the bedroom", "kitchen", (), True, False),  # wider than the kitchen
    ("how long do I boil an egg", "kitchen", (), False, False),  # no noun of theirs: not the kitchen's lights
])
def test_the_llm_grounds_the_light_in_the_boxs_area(rooms, text, here, ids, every, by_room):
    g = llm.ground(text, rooms, here)
    assert (set(g.ids), g.every, g.here) == (set(ids), every, by_room)


@pytest.mark.parametrize("line, ok", [("on kitchen_light kitchen_spots", True), ("on kitchen_light", True),
                                      ("on bedroom_light", False), ("on all", False), ("on kettle", False)])
def test_the_llm_may_act_on_the_boxs_area_only(rooms, line, ok):
    assert (llm.parse(line, "put the lights on", rooms, here="kitchen").intent is not None) is ok


def test_the_llm_is_kept_on_the_boxs_area(rooms):
    lines = llm.language(rooms, "put the lights on", here="kitchen").lines
    assert "on kitchen_light kitchen_spots" in lines and "on kitchen_light" in lines
    assert not any(w in x.split() for x in lines for w in ("all", "bedroom_light", "kettle", "reading_lamp"))
    assert "on all" in llm.language(rooms, "put the lights on").lines  # no area: all the lights, as before


def test_the_llm_is_told_the_room_a_request_names_none_of(rooms):
    backend = Scripted("on kitchen_light kitchen_spots")
    brain = llm.Brain(rooms, [lambda: backend])
    reply = brain.respond("put the lights on", here="kitchen")
    assert reply.intent.device_ids == KITCHEN_LIGHTS
    assert backend.prompts[-1].endswith("Request: put the lights on (in the kitchen)\nAnswer:")
    brain.respond("put the bedroom light on", here="kitchen")
    assert "(in the" not in backend.prompts[-1]  # it names its room
    assert brain.respond("put the lights on").intent is None  # no area: these two are not all the lights
    assert "(in the" not in backend.prompts[-1]


def test_the_llm_route_switches_the_boxs_area_on_the_broker(make_assistant, spy, tmp_path):
    from assistant.engines.load import Engines

    cfg = home_config(tmp_path, '\n[llm]\nroute = "llm"\n', base='area = "living room"\n' + HOME)
    backend = Scripted("on living_room_lamp reading_lamp")
    a, _, _ = make_assistant(cfg, with_engines=Engines(brain=llm.Brain(rooms_of(cfg), [lambda: backend])))
    out = run(a.handle_text("could you put the lights on"))
    assert out.ok and out.intent.source == "llm" and "(in the living room)" in backend.prompts[-1]
    assert set(sent_since(spy)) == TOPICS["living room"]


def rooms_of(cfg: config.Config):
    return Home(cfg).registry

"""Custom intents: the user's grammar (config tables and a hassil YAML file), matched typed and spoken,
published on the intent topic (and in Rhasspy's Hermes shape) and answered with the configured reply."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import EXAMPLE, home_config, run
from test_home_live import wait_for
from test_voice_e2e import reply_text

from assistant import config
from assistant.audio.io import FileSource
from assistant.config import ConfigError
from assistant.engines.base import Hypothesis
from assistant.samples import piper, utterance
from assistant.understand.custom import CustomIntents, from_config
from assistant.understand.grammar import FILLER
from assistant.understand.paths import GrammarGraph
from assistant.understand.rescore import Heard, choose, grammar_paths, to_check

SENTENCES = """
intents:
  SetThermostat:
    data:
      - sentences:
          - "set ([the] {room} thermostat; to {temperature} [degrees])"
          - "(make | set) [it] {temperature} degrees in [the] {room}"
    reply: "Setting the {room} thermostat to {temperature} degrees"
lists:
  room:
    values:
      - office
      - living room
      - in: study
        out: office
  temperature:
    range: {from: 10, to: 30}
"""

INTENTS = """
[[intent]]
name = "RunScene"
sentences = ["(run | start | activate) [the] {scene} scene", "(it's | it is) {scene} time"]
reply = "Starting the {scene} scene"

[[intent]]
name = "FanSpeed"
sentences = ["set [the] {fan} [fan] to {speed} [speed]"]
reply = "The {fan} fan is on {speed}"

[[slot]]
name = "scene"
values = ["movie", "dinner"]
synonyms = { cinema = "movie", film = "movie" }

[[slot]]
name = "fan"
values = ["ceiling", "desk"]

[[slot]]
name = "speed"
synonyms = { low = "1", medium = "2", high = "3" }
"""


def home_with_intents(tmp_path, extra: str = "", sentences: str = SENTENCES) -> config.Config:
    (tmp_path / "sentences.yaml").write_text(sentences)
    top = 'sentences_file = "sentences.yaml"\n'  # a top-level key: before the example's tables
    return home_config(tmp_path, extra + INTENTS, base=top + EXAMPLE.read_text())


@pytest.fixture
def custom(tmp_path):
    return CustomIntents(from_config(home_with_intents(tmp_path)))


@pytest.mark.parametrize("text, name, slots", [
    ("set the office thermostat to 21 degrees", "SetThermostat", {"room": "office", "temperature": 21}),
    ("set the study thermostat to twenty one degrees", "SetThermostat", {"room": "office", "temperature": 21}),
    ("please set the living room thermostat to 19", "SetThermostat", {"room": "living room", "temperature": 19}),
    ("set to 22 degrees the office thermostat", "SetThermostat", {"room": "office", "temperature": 22}),  # reordered
    ("um could you make it 18 degrees in the study", "SetThermostat", {"room": "office", "temperature": 18}),
    ("run the movie scene", "RunScene", {"scene": "movie"}),
    ("okay please start the cinema scene now", "RunScene", {"scene": "movie"}),
    ("it's dinner time", "RunScene", {"scene": "dinner"}),
    ("set the ceiling fan to high", "FanSpeed", {"fan": "ceiling", "speed": "3"}),
])
def test_grammar_matches_noisy_and_reordered_phrasings(custom, text, name, slots):
    intent = custom.understand(text)
    assert intent is not None and (intent.name, intent.slots) == (name, slots)
    assert intent.source == "custom"


@pytest.mark.parametrize("text", [
    "set the office thermostat to 45 degrees",  # out of range
    "set the garage thermostat to 20 degrees",  # no such room
    "run the party scene", "turn on the kitchen light", "set the thermostat",
])
def test_grammar_rejects_what_it_does_not_say(custom, text):
    assert custom.understand(text) is None


HOME_ASSISTANT_SHAPE = """
language: en
intents:
  OrderDrink:
    data:
      - sentences: ["<order> a {size} {drink} [<milk>]"]
        expansion_rules:
          order: "(can I get | I'd like)"  # this block's own, in place of the file's
      - sentences: ["<order> [a] {drink}"]
      - sentences: ["[<order>] the usual"]
        slots: {size: large, drink: latte}  # given without being said
    reply: "One {size} {drink}."
lists:
  size: {values: [small, large]}
  drink: {values: [latte, mocha]}
  kind: {values: [oat, soy]}
expansion_rules:
  order: "(give me | make me)"
  milk: "with {kind:milk} milk"
skip_words: ["by the way"]
"""


def test_a_sentences_file_in_home_assistants_shape_with_rules_and_skip_words(tmp_path):
    """Home Assistant's custom sentences use expansion rules (`<name>`) and their own skip words: they are
    understood as there, by text and by the grammar's graph that listening closely searches."""
    custom = CustomIntents(from_config(home_with_intents(tmp_path, sentences=HOME_ASSISTANT_SHAPE)))
    for text, slots in [("can I get a large latte with oat milk", {"size": "large", "drink": "latte", "milk": "oat"}),
                        ("by the way make me a mocha", {"drink": "mocha"}),
                        ("I'd like a small mocha", {"size": "small", "drink": "mocha"})]:
        intent = custom.understand(text)
        assert intent is not None and (intent.name, intent.slots) == ("OrderDrink", slots), text
    for text in ["give me a small latte", "can I get mocha", "can I get a large latte with milk"]:
        assert custom.understand(text) is None, text  # the block's own rule, not the file's; a slot unsaid
    usual = custom.understand("make me the usual")
    assert (usual.name, usual.slots) == ("OrderDrink", {"size": "large", "drink": "latte"})
    assert custom.reply(usual) == "One large latte."
    graph = GrammarGraph(custom.intents, custom.intents.skip_words)
    nearest = graph.nearest("give me the usually")[0]  # found by the search, the block's slots with it
    assert (nearest.intent, nearest.slots) == ("OrderDrink", {"size": "large", "drink": "latte"})
    assert graph.nearest("make me a mocha")[0].slots == {"drink": "mocha"}  # the other blocks give nothing
    nearest = graph.nearest("can I get a large latte with oak milk by the way")[0]
    assert nearest.slots == {"size": "large", "drink": "latte", "milk": "oat"}
    assert nearest.cost < graph.nearest("can I get a large latte with oak milk by the bay")[0].cost


def test_reply_uses_slot_values(custom):
    assert custom.reply(custom.understand("set the study thermostat to 21")) == "Setting the office thermostat to 21 degrees"


def test_the_recogniser_is_hinted_the_device_names_not_the_grammar(tmp_path, make_assistant):
    """A hint is text the decoder takes as said before, and a long one gets said again ("little bit of
    almond milk. Can I have ..."): the grammar's words are weighed on the audio instead (rescore.py)."""
    a, _, _ = make_assistant(home_with_intents(tmp_path))
    assert "kitchen light" in a.understanding.hotwords.lower()
    for word in ("thermostat", "movie", "cinema", "study"):
        assert word not in a.understanding.hotwords.lower()


@pytest.mark.parametrize("extra, sentences, message", [
    ('[[intent]]\nname = "Bad/Name"\nsentences = ["hello"]\n', SENTENCES, "the name should be letters"),
    ('[[intent]]\nname = "Open"\nsentences = ["open the {door}"]\n', SENTENCES, "slot list 'door' is not defined"),
    ('[[intent]]\nname = "Hi"\nsentences = ["hello"]\nreply = "hi {who}"\n', SENTENCES, "the reply uses {who}"),
    ('[[intent]]\nname = "Hi"\nsentences = ["hello (there"]\n', SENTENCES, "does not parse"),
    ("", "intents: [unclosed", "not a valid YAML sentences file"),
    ("", "lists:\n  room: {range: {from: 30, to: 10}}\n", "range should go up"),
    ("", "intents:\n  Go:\n    data: [{sentences: ['go <where>']}]\n", "the rule <where> is not in"),
    ("", "intents:\n  Go:\n    data: [{sentences: ['go <a>']}]\nexpansion_rules: {a: 'to <b>', b: 'on <a>'}\n",
     "the rule <a> uses itself (a -> b -> a)"),
    ("", "intents:\n  Go:\n    data: [{sentences: ['<r0>']}]\nexpansion_rules:\n"
     + "".join(f"  r{i}: '<r{i + 1}> <r{i + 1}> <r{i + 1}>'\n" for i in range(12)) + "  r12: go\n", "over 100,000"),
    ("", "intents:\n  Go:\n    data: [{sentences: [go], slots: {where: [home, away]}}]\n", "each with a value"),
    ("", "intents:\n  Go:\n    data: [{sentences: [go], slots: {where: home}}, {sentences: [go]}]\n",
     "'go' is in two data blocks that give different slots"),
    ("", "intents:\n  Go:\n    data: [{sentences: [go], requires_context: {area: {slot: true}}}]\n",
     "context"),
    ("", "lists:\n  name: {wildcard: true}\n", "wildcard lists"),
    ("", "skip_words: please\n", "'skip_words': expected a list"),
    ("", "responses: {}\n", "not 'responses'"),
])
def test_bad_grammar_names_the_file_and_the_problem(tmp_path, extra, sentences, message):
    with pytest.raises(ConfigError) as e:
        home_with_intents(tmp_path, extra, sentences)
    assert message in str(e.value) and str(tmp_path) in str(e.value)


def test_typed_custom_intent_is_published_and_answered(tmp_path, make_assistant, spy):
    a, _, events = make_assistant(home_with_intents(tmp_path))
    out = run(a.handle_text("Hey Jarvis, please set the study thermostat to twenty one degrees."))
    assert out.ok and out.reply == "Setting the office thermostat to 21 degrees"
    assert wait_for(lambda: spy.on("assistant/demo/intent/SetThermostat"))
    (msg,) = spy.on("assistant/demo/intent/SetThermostat")
    assert msg["slots"] == {"room": "office", "temperature": 21} and msg["site"] == "demo"
    assert msg["source"] == "custom"
    assert spy.device_messages() == []  # no device was commanded, and no hermes topic without the switch
    assert run(a.handle_text("run the dance scene")).ok is False  # not in the list: nothing published
    spy.settle()
    assert len(spy.on("assistant/demo/intent/SetThermostat")) == 1
    assert [t for t, _ in spy.messages if "/intent/" in t] == ["assistant/demo/intent/SetThermostat"]


def test_hermes_shape(tmp_path, make_assistant, spy):
    cfg = home_with_intents(tmp_path)
    cfg.mqtt.hermes = True
    a, _, _ = make_assistant(cfg)
    assert run(a.handle_text("set the ceiling fan to medium")).ok
    assert run(a.handle_text("turn on the kitchen light")).ok
    assert wait_for(lambda: spy.on("hermes/intent/FanSpeed") and spy.on("hermes/intent/HassTurnOn"))
    (fan,) = spy.on("hermes/intent/FanSpeed")
    assert fan["input"] == "set the ceiling fan to medium" and fan["siteId"] == "demo" and fan["sessionId"]
    assert fan["intent"] == {"intentName": "FanSpeed", "confidenceScore": 1.0}
    slots = {s["slotName"]: s for s in fan["slots"]}
    assert set(slots) == {"fan", "speed"}
    assert slots["fan"]["entity"] == "fan" and slots["fan"]["value"] == {"kind": "Custom", "value": "ceiling"}
    assert slots["speed"]["value"]["value"] == "2" and slots["speed"]["rawValue"] == "2"
    (light,) = spy.on("hermes/intent/HassTurnOn")
    assert light["intent"]["intentName"] == "HassTurnOn" and light["sessionId"] != fan["sessionId"]
    assert {"slotName": "name", "value": {"kind": "Custom", "value": "kitchen_light"}}.items() <= \
        {k: v for k, v in light["slots"][0].items() if k in ("slotName", "value")}.items()


def test_spoken_custom_intent(tmp_path, store, engines, make_assistant, spy):
    a, sink, _ = make_assistant(home_with_intents(tmp_path))
    pcm = utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, "Set the office thermostat to 21 degrees."), 1.0)
    run(a.run(FileSource(pcm=pcm)))
    assert wait_for(lambda: spy.on("assistant/demo/intent/SetThermostat"))
    (msg,) = spy.on("assistant/demo/intent/SetThermostat")
    assert msg["slots"] == {"room": "office", "temperature": 21}
    heard = reply_text(engines, sink, a.understanding.hotwords)  # tiny.en alone sometimes hears "firmest"
    assert "thermostat" in heard and ("21" in heard or "twenty" in heard)
    assert json.loads(dict(spy.messages)["assistant/demo/last_intent"])["name"] == "SetThermostat"


def test_the_grammar_is_searched_for_the_paths_nearest_to_what_was_heard(custom):
    graph = GrammarGraph(custom.intents, FILLER)
    nearest = graph.nearest("run the moving scene")
    assert nearest[0].text == "run the movie scene" and nearest[0].slots == {"scene": "movie"}
    assert all(v.intent == "RunScene" and v.slots.keys() == {"scene"} for v in graph.variants(nearest[0]))
    assert graph.variants(graph.nearest("run the dinner scene")[0]) == []  # heard as it is: nothing else to weigh
    thermostat = graph.nearest("set the office thermostat to twenty one degrees")[0]
    assert thermostat.intent == "SetThermostat" and thermostat.slots["temperature"] == 21  # a number range too
    # A pause after a whole sentence ends the command early (ahead.py) when what may follow changes
    # nothing ("... to 21 [degrees]"); after a piece of one, the box waits.
    assert graph.says_all("run the movie scene") and graph.says_all("set the office thermostat to 21")
    assert not graph.says_all("set the office thermostat to") and not graph.says_all("run the")
    assert graph.says_all("make it 18 degrees in the living room")  # a slot value of two words, said whole
    assert not graph.says_all("make it 18 degrees in the living")


def test_only_paths_that_echo_what_was_heard_are_weighed(custom):
    """Words heard are no grounds for a command that shares none of them that says something: weighed on
    noisy audio, anything fits about as badly as anything else ("tell me the time" for "Living room.")."""
    graph = GrammarGraph(custom.intents, custom.intents.skip_words)
    for heard in ["The kitchen sink.", "Good night, everybody.", "The bedroom light."]:  # no fragments
        assert grammar_paths([graph], [Hypothesis(heard, -1.0)], lambda t: t.lower().strip("."))[0] == {}, heard
    found = grammar_paths([graph], [Hypothesis("It is moving time.", -1.0)], lambda t: t.lower().strip("."))[0]
    assert next(iter(found)) == "it is movie time"


def test_a_misheard_custom_command_is_weighed_on_the_audio_not_snapped_from_text(tmp_path, make_assistant, spy):
    a, _, _ = make_assistant(home_with_intents(tmp_path))
    r = [Hypothesis("Run the moving scene.", -0.4)]
    intent = choose(r, a.understanding.lookup)[1]
    assert intent is None or intent.source != "custom"  # text alone does not guess a slot value
    known, closeness, _ = grammar_paths([a.understanding.grammar], r, a.understanding.templates.clean)
    assert known["run the movie scene"].slots == {"scene": "movie"}
    assert "run the movie scene" in to_check(r, intent, False, None, a.understanding.templates, a.understanding.lookup,
                                             known, closeness)


def test_an_unsure_custom_intent_asks_back_and_acts_on_yes(tmp_path, make_assistant, spy):
    a, _, _ = make_assistant(home_with_intents(tmp_path))
    unsure = dataclasses.replace(a.understanding.custom.understand("run the movie scene"), confidence=0.75)
    out = run(a.handle_text("Run the moving scene.", heard=Heard("Run the moving scene.", unsure, [])))
    assert out.reply == "Did you say: run the movie scene?" and a.understanding.pending is not None
    spy.settle()
    assert not spy.on("assistant/demo/intent/RunScene")
    out = run(a.handle_text("yes"))
    assert out.ok and out.reply == "Starting the movie scene"
    assert wait_for(lambda: spy.on("assistant/demo/intent/RunScene"))
    assert spy.on("assistant/demo/intent/RunScene")[0]["slots"] == {"scene": "movie"}

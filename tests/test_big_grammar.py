"""The user's grammar, whatever its size, heard through the grammar graph (understand/paths.py): a
grammar of fifty million sentences is listened to as closely as one of a few hundred, a fragment or a
single word is no order, and what the recogniser is hinted is never said back. Spoken audio, real models,
the real broker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import DEVSET, EXAMPLE, home_config, needs_devset, run
from hassil import recognize

from assistant import doctor
from assistant.audio.io import FileSource
from assistant.audio.mix import add_noise
from assistant.audio.wav import load_pcm16k
from assistant.engines.asr_faster_whisper import without_hint
from assistant.engines.base import Hypothesis
from assistant.handlers.clock import CLOCK_INTENTS
from assistant.home.registry import Registry
from assistant.samples import espeak, piper, trimmed, utterance
from assistant.understand.custom import load_file
from assistant.understand.grammar import FILLER, hassil_intents
from assistant.understand.paths import GrammarGraph, GrammarTooLarge, tokens
from assistant.understand.rescore import grammar_paths
from assistant.understand.templates import TemplateUnderstander

BIG = Path(__file__).parent / "grammars" / "coffee_orders.yaml"
EXAMPLE_COFFEE = Path(__file__).parent.parent / "examples" / "coffee" / "sentences.yaml"
EXAMPLE_PIZZA = Path(__file__).parent.parent / "examples" / "pizza" / "sentences.yaml"
# The same lists, one template: a few thousand sentences
SMALL = """language: en
intents:
  OrderDrink:
    data:
      - sentences: ["[can I get] [a] [{size}] {drink} [with {milk}]"]
"""

ORDERS = [  # (said, slots meant)
    ("Can I get a large latte with oat milk?", {"size": "large", "drink": "latte", "milk": "oat"}),
    ("Can I get a medium cappuccino?", {"size": "medium", "drink": "cappuccino"}),
    ("Can I get a small americano with soy milk?", {"size": "small", "drink": "americano", "milk": "soy"}),
    ("Can I get a cortado with almond milk?", {"drink": "cortado", "milk": "almond"}),
    ("Can I get a large mocha with cream?", {"size": "large", "drink": "mocha", "milk": "cream"}),
]
VOICES = [lambda store, t: piper(store, t), lambda store, t: espeak(t, "en-us+m3", 150),
          lambda store, t: espeak(t, "en-gb+f2", 145)]


def coffee_home(tmp_path, grammar: Path):
    tmp_path.mkdir(exist_ok=True)
    return home_config(tmp_path, base=f'sentences_file = "{grammar.as_posix()}"\n' + EXAMPLE.read_text())


def small_grammar(tmp_path) -> Path:
    big = BIG.read_text()
    p = tmp_path / "small.yaml"
    p.write_text(SMALL + big[big.index("lists:"):])
    return p


def written(tmp_path, grammar: str) -> Path:
    p = tmp_path / "g.yaml"
    p.write_text(grammar)
    return p


def graph(path: Path) -> GrammarGraph:
    return GrammarGraph(hassil_intents(load_file(path)), FILLER)


def test_the_grammars_say_what_the_test_needs(tmp_path):
    big, small = graph(BIG), graph(small_grammar(tmp_path))
    assert big.sentence_count() > 50_000_000 and 1_000 < small.sentence_count() < 10_000
    path = big.nearest("can i get a large double shot latte with a bit of soy milk")[0]
    assert path.slots == {"size": "large", "shots": "2", "drink": "latte", "milk": "some"}


def test_a_slot_written_against_a_word_is_a_slot_then_the_word(tmp_path):
    """hassil gives "{minutes}-minute" as one word; the graph must hear "a 5-minute timer" through the slot."""
    p = written(tmp_path, """language: en
intents:
  StartTimer:
    data:
      - sentences: ["set a {minutes}-minute timer", "turn it up to {level}%"]
lists:
  minutes: {range: {from: 1, to: 100}}
  level: {range: {from: 0, to: 100}}
""")
    g = graph(p)
    assert not [w for w in g.vocabulary if "{" in w or " " in w]
    for said, slots in (("set a 5-minute timer", {"minutes": 5}), ("turn it up to 40%", {"level": 40})):
        [path] = g.nearest(said, 1)
        assert (path.slots, path.cost) == (slots, 0.0), path
        assert "{" not in path.text and g.says_all(said)


def test_a_value_heard_as_it_is_is_not_joined_into_another_and_both_nearest_orders_are_varied(tmp_path):
    """Whisper heard "with oat milk" as "without nope": "latte without" is not "flat white" (a latte was heard
    as it is), and when a misheard drink does win the nearest path ("lathe without"), the milk is still tried
    on the next nearest order, so the audio can choose "with oat milk"."""
    g = graph(small_grammar(tmp_path))
    [path] = g.nearest("can i get a large latte without no", 1)
    assert path.slots["drink"] == "latte"
    readings = [Hypothesis("Can I get a large lathe without nope?", -0.3),
                Hypothesis("Can I get a large lathe without no?", -0.4)]
    known, _, _ = grammar_paths([g], readings, lambda text: " ".join(tokens(text)))
    assert "can i get a large latte with oat milk" in known, list(known)


def test_a_read_order_is_tried_with_the_values_other_readings_found_for_its_slots(tmp_path):
    """The decoder wrote "hot chocolate" where the text search found "cortado", and "oat milk" where it found
    "coconut": each value is tried in the read order on its own, not only values spelled like its own; a
    value of another list ("decaf" where the roasts said with the word "roast" stand) is not."""
    g = graph(EXAMPLE_COFFEE)
    [read] = g.nearest("i would like a regular hot chocolate with a splash of oat milk please", 1)
    assert read.cost == 0 and read.slots["drink"] == "hot chocolate"
    found = [{"size": "medium", "drink": "cortado", "milk": "coconut"}, {"drink": "latte"}, {"drink": "mocha"}]
    tried = {v.text for v in g.variants(read, per_slot=0, every_slot=True, also=found)}
    assert tried == {"i would like a regular cortado with a splash of oat milk please",
                     "i would like a regular hot chocolate with a splash of coconut milk please",
                     "i would like a regular latte with a splash of oat milk please"}  # two values a slot
    [roasted] = g.nearest("i'd like a light roast latte", 1)
    assert not g.variants(roasted, per_slot=0, every_slot=True, also=[{"roast": "decaf"}])


def test_a_read_order_is_doubted_where_its_value_is_unlike_what_was_heard_in_its_place():
    """A sentence read from the audio (steered.py) has no heard words matched to its slots: they are found
    by aligning it to the free reading. "Hot chocolate" where "Klotago" was heard is a value no reading
    says, whose letters are far less like the heard word than "cortado"'s: Whisper's prior chose it (it
    rarely writes " cort"), not the audio, and it is doubted. The same order heard as it is is not."""
    g = graph(EXAMPLE_COFFEE)
    [read] = g.nearest("i would like a regular hot chocolate with a splash of oat milk please", 1)
    read = dataclasses.replace(read, heard={})  # as the steered reading gives it
    heard = "I would like a regular Klotago with a special vote, milk, please."
    aligned = g.aligned(read, heard)
    assert aligned.heard["drink"] == "klotago" and aligned.heard["size"] == "regular", aligned.heard
    assert g.doubtful(aligned, [tokens(heard)])
    said = "I would like a regular hot chocolate with a splash of oat milk please."
    assert g.aligned(read, said).heard["drink"] == "hot chocolate"
    assert not g.doubtful(g.aligned(read, said), [tokens(said)])


def orders_heard(make_assistant, cfg, clips: list) -> tuple[list[str], list[str]]:
    """The orders (said in each voice, with kitchen noise at 12 dB) understood with exactly their slots at a
    confidence the box acts on, and those understood as something else at that confidence. The close
    listening alone, on the same audio for both grammars: the pipeline's early decisions depend on timing."""
    a, _, _ = make_assistant(cfg)
    u = a.understanding
    right, wrong, missed = [], [], []
    for text, slots, v, pcm in clips:
        heard = u.hear(a.engines.asr, pcm)
        acted = heard.intent is not None and heard.intent.confidence >= cfg.understand.act_threshold
        got = heard.intent.slots if acted and heard.intent.name == "OrderDrink" else None
        line = f"{text} ({v}): heard {heard.text!r}, understood {heard.intent and heard.intent.slots}"
        (right if got == slots else wrong if acted else missed).append(line)
    print("", *missed, sep="\n  not acted on: ")
    return right, wrong


@needs_devset  # its noise
def test_a_grammar_of_fifty_million_sentences_is_heard_as_closely_as_a_small_one(tmp_path, make_assistant, store):
    noise = load_pcm16k(DEVSET / "noise-rir" / "noise1.wav")
    clips = [(text, slots, v, add_noise(utterance(0.5, trimmed(voice(store, text)), 1.0), noise, 12, 7919 * i))
             for i, (text, slots, v, voice) in enumerate((t, s, v, voice) for t, s in ORDERS
                                                         for v, voice in enumerate(VOICES))]
    small, small_wrong = orders_heard(make_assistant, coffee_home(tmp_path / "s", small_grammar(tmp_path)), clips)
    big, big_wrong = orders_heard(make_assistant, coffee_home(tmp_path / "b", BIG), clips)
    n = len(clips)
    print(f"\nexactly right of {n} orders in noise at 12 dB: a grammar of a few thousand sentences {len(small)}, "
          f"of fifty million {len(big)}; wrong orders {len(small_wrong)} and {len(big_wrong)}")
    # The rest are asked back ("Did you say ...?"); tiny.en hears espeak in noise poorly ("no cut" for "mocha").
    assert len(big) >= len(small) - 1 and len(big) >= 2 * n // 3, (small, big)
    assert not big_wrong and not small_wrong, (small_wrong, big_wrong)


FRAGMENTS = ["Pause.", "Next.", "Office.", "Kitchen.", "Oat milk.", "Large.", "Did you remember to buy milk?",
             "Can you pass me the remote?"]


def test_a_word_or_a_fragment_orders_nothing(tmp_path, make_assistant, spy, store):
    a, _, events = make_assistant(coffee_home(tmp_path, BIG))
    a.player.sink = None
    acted = []
    for said in FRAGMENTS:
        for voice in VOICES[:2]:
            before, seen = len(spy.messages), len(events)
            run(a.run(FileSource(pcm=utterance(0.5, trimmed(voice(store, said)), 1.0)), awake=True))
            spy.settle()
            if got := [t for t, _ in spy.messages[before:] if "/intent/" in t or t.startswith("home/")]:
                acted.append((said, [e.data["text"] for e in events[seen:] if e.kind == "transcript"], got))
    assert not acted


def test_the_hint_said_back_is_taken_out():
    hint = "Kitchen light, living room lamp, sofa lamp."
    assert without_hint("Kitchen light, living room lamp. Turn on the sofa lamp.", hint) == "Turn on the sofa lamp."
    assert without_hint("Sofa lamp, kitchen light.", hint) == ""
    both = "Turn on the kitchen light and the sofa lamp."
    assert without_hint(both, hint) == both  # two names with a word between them were said


def test_the_hint_never_becomes_words_on_short_and_silent_clips(tmp_path, make_assistant, store):
    a, _, _ = make_assistant(coffee_home(tmp_path, BIG))
    asr, hint = a.engines.asr, a.understanding.hotwords
    names = [n.strip().lower() for n in hint.rstrip(".").split(",")]
    assert names and not {"latte", "oat", "cappuccino"} & set(hint.lower().replace(",", " ").split())
    clips = {"silence": np.zeros(16000, np.int16), "long silence": np.zeros(48000, np.int16)}
    for said in ("Yes.", "Stop.", "Pause.", "A latte.", "Thank you."):
        for v, voice in enumerate(VOICES[:2]):
            clips[f"{said} {v}"] = trimmed(voice(store, said))  # short, no silence around
            clips[f"{said} {v} padded"] = utterance(1.5, trimmed(voice(store, said)), 2.0)
    for name, pcm in clips.items():
        readings = [h.text.lower() for h in asr.hypotheses(asr.encode(pcm), hint, 4)] + [asr.transcribe(pcm, hint)]
        assert not [r for r in readings for n in names if n in r], (name, readings)


def test_a_slot_filled_from_two_lists_takes_each_lists_values_where_it_is_written(tmp_path):
    """hassil's graph names the slot, not the list: "a dark latte" is no sentence of this grammar ("dark"
    is a roast, said with the word "roast"; only "decaf" stands without it), and the graph must not say it."""
    p = written(tmp_path, """language: en
intents:
  OrderDrink:
    data:
      - sentences: ["[a] {roast} roast {drink}", "[a] {decaf:roast} {drink}"]
lists:
  roast: {values: [light, {in: dark, out: dark}]}
  decaf: {values: [{in: decaf, out: decaf}, {in: unleaded, out: decaf}]}
  drink: {values: [latte, mocha]}
""")
    g = graph(p)
    assert g.nearest("a decaf latte")[0].slots == {"roast": "decaf", "drink": "latte"}
    assert g.nearest("a dark roast mocha")[0].slots == {"roast": "dark", "drink": "mocha"}
    intents = hassil_intents(load_file(p))
    for said in ("a dark latte", "a decaf roast latte", "an unleaded roast mocha", "a light mocha"):
        paths = g.nearest(said, 4)
        assert paths and all(recognize(path.text, intents) for path in paths), (said, [x.text for x in paths])
        assert all(path.cost > 0 for path in paths), said


def test_a_slot_value_unlike_what_was_heard_and_said_by_no_reading_is_doubted():
    """The audio may prefer "latte" for the heard "klotago" only because "cortado" fits no better: such a
    value is asked back, not ordered (rescore.py)."""
    g = graph(BIG)
    heard = "can i get a large klotago with oat milk"
    paths = g.nearest(heard, 1)
    paths += g.variants(paths[0])
    drinks = {p.slots["drink"]: g.doubtful(p, [tokens(heard)]) for p in paths}
    assert drinks.get("latte") is True and drinks.get("cortado") is False, drinks
    said = g.nearest("can i get a large cortado with oat milk", 1)[0]
    assert not g.doubtful(said, [tokens("can i get a large cortado with oat milk")])


def test_a_value_is_doubted_only_against_values_that_mean_something_else():
    """A meaning is judged by its likest saying. "a" heard as "the" is no doubt about one pizza: "one" says the
    same count, and no other count is said with "pizza". A size read as "personal" where "smoll" was heard is
    a small pizza, which "small" bears out; a large one is doubted."""
    g = graph(EXAMPLE_PIZZA)

    def doubted(read_as: str, heard: str) -> bool:
        [read] = g.nearest(read_as, 1)
        assert read.cost == 0, read.text
        aligned = g.aligned(dataclasses.replace(read, heard={}), heard)  # as the steered reading gives it
        return g.doubtful(aligned, [tokens(heard)])

    assert not doubted("i'd like a extra large pizza with mushrooms please",
                       "I'd like the extra large pizza with mushrooms, please.")
    assert not doubted("can i have a personal pizza with mushrooms", "Can I have a smoll pizza with mushrooms?")
    assert doubted("can i have a large pizza with mushrooms", "Can I have a smoll pizza with mushrooms?")


def test_a_word_of_a_sentence_without_slots_unlike_what_was_heard_in_its_place_is_doubted():
    """A sentence without slots means what its words say: "tell me the time" for a heard "Tell me a joke."
    is the grammar's guess (a question asked back, never the time said), but not for "Tell me for time."."""
    g = TemplateUnderstander(Registry([])).everyday  # the box's own sentences: the time, the date, timers
    for heard, believed in [("tell me a joke", set()), ("tell me your job", set()),
                            ("tell me for time", {"tell me the time"})]:
        clock = [p for p in g.nearest(heard, 4) if p.intent in CLOCK_INTENTS]
        assert clock, heard
        assert {p.text for p in clock if not g.doubtful(p, [tokens(heard)])} == believed, heard


def test_a_sentence_that_leaves_out_a_value_the_readings_clearly_said_means_less_than_was_said():
    """The example coffee grammar holds sugar only with a roast: the nearest sentence to "can I get a large
    latte with oat milk and two sugars" leaves the sugars out, and is no such order. A value heard by the top
    reading only, one heard in place of another of the same slot, one whose words serve another slot, one like
    a word of the sentence no reading says and a word of a longer value leave nothing out."""
    g = graph(EXAMPLE_COFFEE)
    said = "Can I get a large latte with oat milk and two sugars?"
    nearest = g.nearest("can i get a large latte with oat milk", 1)[0]  # the one the audio chose, live
    assert nearest.cost == 0 and "sugar" not in nearest.slots, nearest.text
    assert g.leaves_out(nearest.text, nearest.slots, [tokens(said), tokens(said), tokens("Can I get a large latte.")])
    assert not g.leaves_out(nearest.text, nearest.slots,
                            [tokens(said), tokens("Can I get a large latte."), tokens("Can I get a large latte.")])
    almond = g.nearest("can i get a large latte with almond milk", 1)[0]
    assert not g.leaves_out(almond.text, almond.slots, [tokens("Can I get a large latte with oak milk?")])
    medium = g.nearest("can i get a medium latte", 1)[0]
    assert set(medium.slots) == {"size", "drink"}
    assert not g.leaves_out(medium.text, medium.slots, [tokens("Can I get a medium latte?")])
    white = g.nearest("can i get a large latte", 1)[0]
    assert not g.leaves_out(white.text, white.slots, [tokens("Can I get a large white latte?")])
    chai = g.nearest("could i have a twenty ounce single shot chai latte please", 1)[0]
    assert not g.leaves_out(chai.text, chai.slots, [tokens("Could I have a 20-ounce single shot, chai light, please?")])


def test_a_word_is_not_made_an_order_by_a_reading_far_down_the_beam():
    """A lone "espresso" read as "Espresso" three times and, fourth, as "That's great soul" (three words,
    as many as "a small espresso"): what counts is what the reading a sentence was found from said."""
    from assistant.engines.base import Hypothesis
    from assistant.understand.rescore import grammar_paths

    def clean(text):
        return " ".join(tokens(text))

    coffee = graph(Path(__file__).parents[1] / "examples" / "coffee" / "sentences.yaml")  # no one-word order
    readings = [Hypothesis(t, -0.3) for t in ("Espresso", "Espresso.", "Espresso!", "That's great soul")]
    known, _, _ = grammar_paths([coffee], readings, clean)
    assert not any(i.slots.get("drink") == "espresso" for i in known.values()), list(known)
    order = [Hypothesis("can I get a small espresso", -0.3)]
    known, _, _ = grammar_paths([coffee], order, clean)
    assert any(i.slots.get("drink") == "espresso" for i in known.values())  # the same sentence, said


def test_a_grammar_too_large_to_build_is_matched_exactly_and_said_so(tmp_path, make_assistant):
    """`(a; b; ...; h)` is 40,320 orders of eight parts: its graph would take a gigabyte and seconds a
    turn. It is not built; the sentences still work as said, and doctor warns."""
    p = written(tmp_path, """language: en
intents:
  Mix:
    data:
      - sentences: ["mix (one; two; three; four; five; six; seven; eight)"]
""")
    with pytest.raises(GrammarTooLarge):
        graph(p)
    cfg = coffee_home(tmp_path, p)
    [found] = doctor.check_grammar(cfg)
    assert found.level == "warn" and "matched exactly only" in found.text
    a, _, _ = make_assistant(cfg)
    assert a.understanding.grammar is None
    assert a.understanding.lookup("mix one two three four five six seven eight").name == "Mix"

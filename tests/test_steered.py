"""Reading the audio as the user's grammar allows (understand/steered.py): Whisper's decoder in numpy
(engines/whisper_decoder.py) read from the same model file, steered token by token through the grammar
graph; what it finds is weighed on the audio with the end of text counted. Real model, spoken audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DEVSET, needs_devset, run
from test_big_grammar import BIG, EXAMPLE_COFFEE, ORDERS, VOICES, coffee_home, graph

from assistant.audio.mix import add_noise, reverberate, to_int16
from assistant.audio.wav import load_pcm16k
from assistant.engines.base import Hypothesis
from assistant.engines.whisper_decoder import ModelFileError, WhisperDecoder, read_variables
from assistant.samples import espeak, trimmed, utterance
from assistant.startup import load_config
from assistant.understand import rescore
from assistant.understand.paths import GrammarGraph
from assistant.understand.paths import Path as GrammarPath
from assistant.understand.steered import steered, steering


@pytest.fixture(scope="module")
def asr(engines):
    return engines.asr


def test_the_decoder_reads_as_ctranslate2_does_and_its_cache_changes_nothing(asr):
    """The numpy decoder's next-token log-probabilities are CTranslate2's (float32) on the same encoding,
    and reading a sentence token by token from the cache gives what reading it at once gives."""
    import ctranslate2

    pcm = utterance(0.3, espeak("can I get a large latte with oat milk"), 0.5)
    features = asr.model.feature_extractor(pcm.astype(np.float32) / 32768)
    from faster_whisper.audio import pad_or_trim

    exact = ctranslate2.models.Whisper(str(asr.model_file.parent), device="cpu", compute_type="float32")
    encoded = exact.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(pad_or_trim(features, 1000)[None])))
    prompt = asr._prompt(None)
    theirs = exact.generate(encoded, [prompt], beam_size=1, max_length=len(prompt) + 1, return_logits_vocab=True,
                            suppress_blank=False, suppress_tokens=[])[0]
    theirs = np.asarray(theirs.logits[0][0], dtype=np.float64)
    theirs -= theirs.max() + np.log(np.exp(theirs - theirs.max()).sum())
    decoder = WhisperDecoder(asr.model_file)
    audio = np.asarray(encoded)[0]
    ours, _ = decoder.step(decoder.start(audio), np.array([prompt]))
    assert np.abs(ours[0] - theirs).max() < 1e-3
    assert ours[0].argmax() == theirs.argmax()

    said = asr.token_ids(" Can I get a large latte with oat milk?")
    at_once, _ = decoder.step(decoder.start(audio), np.array([prompt + said]))
    cache = decoder.start(audio)
    _, cache = decoder.step(cache, np.array([prompt]))
    for token in said:
        one, cache = decoder.step(cache, np.array([[token]]))
    assert np.abs(one - at_once).max() < 1e-4


def test_a_model_file_that_is_not_whisper_is_refused(tmp_path, asr):
    whole = asr.model_file.read_bytes()
    for name, data in {"cut short": whole[:len(whole) // 3], "empty": b"", "not a model": b"\x06\0\0\0" + b"x" * 64,
                       "another version": b"\x05" + whole[1:200]}.items():
        bad = tmp_path / f"{name}.bin"
        bad.write_bytes(data)
        with pytest.raises(ModelFileError):
            WhisperDecoder(bad)
    assert "decoder/embeddings/weight" in read_variables(asr.model_file, "decoder/")


def _room(pcm: np.ndarray, k: int) -> np.ndarray:
    rir = load_pcm16k(DEVSET / "noise-rir" / f"rir{k % 3 + 1}.wav")
    noise = load_pcm16k(DEVSET / "noise-rir" / "noise1.wav")
    return to_int16(add_noise(reverberate(pcm, rir), noise, 12, 7919 * k))


@needs_devset  # its rooms and noise
def test_the_steered_reading_is_a_sentence_of_the_grammar_with_the_slots_of_its_path(asr, store):
    """Orders in a reverberant room with noise at 12 dB: every steered reading is a sentence of the
    fifty-million-sentence grammar, its slots those of its path, and most are the order said, even where
    the free reading is not a sentence of the grammar at all."""
    g = graph(BIG)
    right, free_right, n = 0, 0, 0
    for k, (text, slots) in enumerate(ORDERS):
        for v, voice in enumerate(VOICES):
            encoded = asr.encode(_room(utterance(0.4, trimmed(voice(store, text)), 0.8), k * 3 + v))
            found = steered(asr, encoded, steering(g, asr.token_ids))
            assert found
            for path, written, logprob in found:
                assert g.nearest(written)[0].cost == 0, written  # said as the grammar says it
                assert g.nearest(path.text)[0].slots == path.slots
                assert logprob < 0
            n += 1
            right += found[0][0].slots == slots
            free = g.nearest(asr.hypotheses(encoded, None, 1)[0].text)[0]
            free_right += free.cost == 0 and free.slots == slots
    print(f"\nsteered readings exactly right: {right} of {n}; free readings that are that sentence: {free_right}")
    assert right >= max(free_right, 2 * n // 3)


def test_the_steered_reading_keeps_a_sentence_that_begins_another_way(asr):
    """The beam commits to a sentence's first words: where every history begins alike, the best that begins
    another way is kept too, and the best such sentence of another meaning is read out with the rest (a
    garbled "a big double latte please" was once read only as "I'd like a double latte ...")."""
    g = graph(BIG)
    encoded = asr.encode(utterance(0.4, trimmed(espeak("a big double latte please", "en-029+m2", 150)), 0.8))
    found = steered(asr, encoded, steering(g, asr.token_ids))
    first = [written.split()[0].lower() for _, written, _ in found]
    assert first[:3] == ["i'd"] * 3, found  # the three likeliest all begin alike ...
    assert len(found) == 4 and first[3] != "i'd", found  # ... and one more does not
    assert g.nearest(found[3][1])[0].cost == 0, found[3]  # a sentence of the grammar, as the decoder wrote it
    assert found[3][0].meaning not in {path.meaning for path, _, _ in found[:3]}


def test_a_sentence_that_stops_where_the_speech_goes_on_fits_worse_with_its_end_counted(asr):
    """CTranslate2's teacher-forced fit has no end of text: "A large drip coffee." fits the audio of "a
    large drip coffee with soy milk" about as well as the whole sentence does, word for word."""
    for voice in ("en-us", "en-gb+m3"):
        encoded = asr.encode(utterance(0.3, espeak("a large drip coffee with soy milk", voice), 0.8))
        texts = ["A large drip coffee with soy milk.", "A large drip coffee.", "A large drip coffee"]
        fits = asr.score(encoded, texts)
        ended = asr.with_ends(encoded, texts, fits)
        print(voice, [round(f, 3) for f in fits], [round(e, 3) for e in ended])
        assert ended[0] > ended[1] and ended[0] > ended[2]
        # the end of text costs the sentences that stop early more than the whole one
        assert min(fits[1] - ended[1], fits[2] - ended[2]) > fits[0] - ended[0]


def test_a_variant_is_written_as_the_decoder_wrote_its_path():
    path = GrammarPath("OrderDrink", ["id", "like", "a", "big", "coffee"], ["i'd", "like", "a", "big", "coffee"],
                       {"size": "large", "drink": "coffee"}, 0.0, spans=[("size", 3, 4, 3), ("drink", 4, 5, 4)])
    latte = GrammarPath("OrderDrink", ["id", "like", "a", "big", "latte"], ["i'd", "like", "a", "big", "latte"],
                        {"size": "large", "drink": "latte"}, 0.0, spans=[("size", 3, 4, 3), ("drink", 4, 5, 4)])
    assert rescore._swapped("I'd like a big Coffee, please.", path, latte) == "I'd like a big latte, please."
    assert rescore._swapped("I'd like a big cup.", path, latte) == "i'd like a big latte"  # not found: the grammar's
    assert rescore.as_spoken("can i have a latte") == "Can I have a latte."
    assert rescore.as_spoken("A cortado, tall.") == "A cortado, tall."


def test_steering_is_off_when_the_config_says_so(tmp_path, make_assistant, monkeypatch, store):
    calls = []
    real = rescore.steered
    monkeypatch.setattr(rescore, "steered", lambda *a, **k: calls.append(1) or real(*a, **k))
    pcm = utterance(0.3, espeak("could I have a large cortado with oat milk", "en-gb+m3"), 0.8)
    cfg = coffee_home(tmp_path / "on", BIG)
    a, _, _ = make_assistant(cfg)
    on = a.understanding.hear(a.engines.asr, pcm)
    assert calls, on.text  # the free reading was not the order word for word, so it was steered
    cfg = coffee_home(tmp_path / "off", BIG)
    cfg.understand.steer = False
    a, _, _ = make_assistant(cfg)
    calls.clear()
    a.understanding.hear(a.engines.asr, pcm)
    assert not calls


def test_a_model_file_the_decoder_cannot_read_leaves_the_grammar_matched_by_text(tmp_path, store, caplog):
    from assistant.engines.asr_faster_whisper import FasterWhisper

    asr = FasterWhisper(store, "whisper-tiny.en")
    bad = tmp_path / "model.bin"
    bad.write_bytes(asr.model_file.read_bytes()[:1000])
    asr.model_file = bad
    assert asr.steerable() is None and not asr.steers
    assert "cannot be steered" in caplog.text
    encoded = asr.encode(utterance(0.3, espeak("a large latte"), 0.5))
    assert rescore.steered_paths(asr, encoded, [graph(BIG)], [Hypothesis("a large latte", -0.3)]) == ({}, set())


@needs_devset  # Rhasspy's grammar and the rooms' noise
def test_a_word_in_noise_is_not_read_as_a_sentence_of_the_grammar(tmp_path, make_assistant, spy, store):
    """The steered decoding always finds some sentence: a slot value said alone in noise ("blue", read
    "The building.") was once read "What time is it?" and acted on. Fragments are not steered."""
    from test_rhasspy_devset import rhasspy_home

    from assistant.audio.io import FileSource
    from assistant.samples import piper

    a, _, events = make_assistant(rhasspy_home(tmp_path))
    a.player.sink = None
    noise = load_pcm16k(DEVSET / "noise-rir" / "noise2.wav")
    acted = []
    for k, said in enumerate(["Blue.", "Red.", "Green.", "Garage.", "Bedroom.", "Time.", "Light."]):
        for voice in (lambda t: piper(store, t, length_scale=1.25), lambda t: espeak(t, "en-gb+m3", 140)):
            pcm = to_int16(add_noise(utterance(0.6, trimmed(voice(said)), 1.2).astype(np.float64), noise, 12,
                                     4001 * k))
            before = len(spy.messages)
            run(a.run(FileSource(pcm=pcm), awake=True))
            spy.settle()
            if got := [t for t, _ in spy.messages[before:] if "/intent/" in t or t.startswith("home/")]:
                acted.append((said, got))
    assert not acted


def test_a_steered_path_is_taken_only_where_the_free_reading_echoes_one_of_its_words():
    """A slot value said alone in noise at 6 dB ("hot chocolate", read "I took what?") was steered to "a
    large hot chocolate" and acted on: nothing heard witnessed it."""
    g = graph(Path(__file__).parents[1] / "examples" / "coffee" / "sentences.yaml")
    order = g.nearest("can i get a large hot chocolate")[0]
    assert order.slots == {"size": "large", "drink": "hot chocolate"}
    assert not g.echoes(order, "I took what?") and not g.echoes(order, "The building.")
    assert g.echoes(order, "And I get a lunch hot chocolate.")  # one word as it is
    latte = g.nearest("a dark roast latte with no sugar")[0]
    assert g.echoes(latte, "Another close latte with no shoulder.")
    assert g.echoes(latte, "Another close lattes with no shoulder.")  # nearly


def test_a_sentence_whose_block_gives_slots_is_read_with_them(asr, tmp_path):
    """A data block's `slots` ("the usual": a large latte) are said by no word, so the steered reading
    takes them from the block its path went through, as the text search and hassil do."""
    sentences = tmp_path / "sentences.yaml"
    sentences.write_text("""
intents:
  OrderDrink:
    data:
      - sentences: ["[can I get] a {size} {drink} [please]"]
      - sentences: ["[can I get] the usual [please]"]
        slots: {size: large, drink: latte}
lists:
  size: {values: [small, large]}
  drink: {values: [latte, mocha]}
""")
    g = graph(sentences)
    for text, slots in [("Can I get the usual, please?", {"size": "large", "drink": "latte"}),
                        ("Can I get a small mocha, please?", {"size": "small", "drink": "mocha"})]:
        encoded = asr.encode(utterance(0.4, trimmed(espeak(text)), 0.8))
        path = steered(asr, encoded, steering(g, asr.token_ids))[0][0]
        assert (path.intent, path.slots) == ("OrderDrink", slots), text


def test_a_word_or_two_stands_only_for_a_sentence_that_says_them():
    """"drip coffee" said alone was searched into "a dark coffee" and acted on. A word or two heard (filler
    aside) is never steered, and is taken only for a sentence that says those words as they are."""
    g = graph(Path(__file__).parents[1] / "examples" / "coffee" / "sentences.yaml")

    def paths(heard):
        return list(rescore.grammar_paths([g], [Hypothesis(heard, -0.3)], lambda t: t.lower().strip(".,?"))[0])

    for heard in ["Drip coffee.", "Hot chocolate, please.", "Oat milk.", "Latte."]:
        assert g.fragment(heard) and paths(heard) == [], heard
    assert paths("Large latte, please.") == ["a large latte please"]  # only "a" added
    assert not g.fragment("A large latte.") and "a large latte" in paths("A large latte.")


def test_an_order_read_as_a_command_for_a_device_the_home_lacks_is_still_weighed_as_an_order(tmp_path,
                                                                                           make_assistant):
    """Whisper read "a tall decaf flat white with skimmed milk" as "That's all the cat flat white windkins
    milk.", which the light templates take as exactly a light called "windkins milk" set to white. The
    user's grammar is weighed on the audio all the same, and the order is heard."""
    said = "a tall decaf flat white with skimmed milk"
    a, _, _ = make_assistant(coffee_home(tmp_path, EXAMPLE_COFFEE))
    u, asr = a.understanding, a.engines.asr
    reading = [Hypothesis("That's all the cat flat white windkins milk.", -0.7)]
    template = u.lookup(reading[0].text)
    assert template.unknown_name and template.name == "HassLightSet", template  # what it would have been
    encoded = asr.encode(utterance(0.4, trimmed(espeak(said, "en-gb-x-rp")), 0.8))
    heard = rescore.weigh(encoded, reading, template, asr, u.templates, u.lookup, True, u.unsure, u.grammars)
    assert heard.intent is not None and heard.intent.name == "OrderDrink", heard.intent
    assert heard.intent.slots == {"size": "small", "roast": "decaf", "drink": "flat white", "milk": "skim"}


PIZZA_EXAMPLE = EXAMPLE_COFFEE.parents[1] / "pizza" / "sentences.yaml"


def test_an_order_heard_word_for_word_is_weighed_against_the_values_most_like_its_own(tmp_path, make_assistant,
                                                                                       store):
    """Whisper read a thick crust as "thin crust" at 12 dB, word for word an order of the pizzeria's grammar,
    and it was made at confidence 1.0. An order read exactly is weighed on the audio against itself with each
    value changed for the one of its list most like it, as an on/off is against its opposite: the crust said
    wins, or the order is asked back; never the misheard one made. The same order read as said is made as it
    is."""
    said = "I would like one large thick crust pepperoni pizza to go"
    misread = "I would like one large thin crust pepperoni pizza to go."
    a, _, _ = make_assistant(coffee_home(tmp_path, PIZZA_EXAMPLE))
    u, asr = a.understanding, a.engines.asr
    act = a.cfg.understand.act_threshold
    wrong, right = u.lookup(misread), u.lookup(said + ".")
    assert wrong is not None and wrong.confidence >= 1 and wrong.slots["crust"] == "thin"  # heard exactly
    for voice in VOICES[:2]:
        encoded = asr.encode(utterance(0.4, trimmed(voice(store, said)), 0.8))
        heard = rescore.weigh(encoded, [Hypothesis(misread, -0.3)], wrong, asr, u.templates, u.lookup, True,
                              u.unsure, u.grammars)
        assert heard.intent is not None and heard.intent.name == "OrderPizza", heard.intent
        assert heard.intent.slots["crust"] == "thick" or heard.intent.confidence < act, heard.intent
        heard = rescore.weigh(encoded, [Hypothesis(said + ".", -0.3)], right, asr, u.templates, u.lookup, True,
                              u.unsure, u.grammars)
        assert heard.intent is right, heard.intent  # borne out as it is


LONG_ORDERS = [  # (said, its voice, slots meant): each was asked back, at 0.72 and 0.74, before the lead per token
    # was counted over the sentence's length
    ("I'd like a twelve ounce blonde roast single shot latte with nonfat milk and two sugars", ("en-029+m5", 165),
     {"size": "small", "roast": "light", "shots": "1", "drink": "latte", "milk": "skim", "sugar": "2"}),
    ("can I have a grande decaf chai latte and no sugar please", ("en-us+m2", 130),
     {"size": "medium", "roast": "decaf", "drink": "chai latte", "sugar": "0"}),
]


def test_a_long_order_heard_right_is_acted_on_not_asked_back(tmp_path, make_assistant):
    """Orders of a dozen words, which whisper reads with a word or two wrong ("12-ounce-land lost", "brand
    decaf chylotate"): the audio bears the order out over the sentences one slot away by a lead per token
    smaller than a short command needs, but over many more tokens; it is carried out, not asked back."""
    a, _, _ = make_assistant(coffee_home(tmp_path, EXAMPLE_COFFEE))
    for said, voice, slots in LONG_ORDERS:
        heard = a.understanding.hear(a.engines.asr, utterance(0.3, espeak(said, *voice), 1.0))
        assert heard.intent is not None and heard.intent.slots == slots, (said, heard.text, heard.intent)
        assert heard.intent.confidence >= a.cfg.understand.act_threshold, (said, heard.text, heard.intent)


COFFEE_EXAMPLE = EXAMPLE_COFFEE.parent / "coffee.toml"  # the coffee bar: its grammar, no devices
GARBLED_ORDERS = [  # (said, its voice, slots meant): each was asked back (0.75) while a doubted value capped it
    ("a regular light roast quad shot hot chocolate with almond milk and a sugar", ("en-029+m5", 160),
     {"size": "medium", "roast": "light", "shots": "4", "drink": "hot chocolate", "milk": "almond", "sugar": "1"}),
    ("could I get a tall medium roast quad shot macchiato with skimmed milk and sugar", ("en-gb-x-gbclan+m6", 160),
     {"size": "small", "roast": "medium", "shots": "4", "drink": "macchiato", "milk": "skim", "sugar": "1"}),
]


def test_an_order_read_garbled_is_carried_out_where_the_audio_is_twice_as_sure(tmp_path, make_assistant):
    """Read "A regular light-roast, ground-shot-hot-hot-hot-let-we-dulman-milk" and "Could I get a tall
    medium lost quad shot Makirata wins Kim's milk and sugar?" in the coffee bar's example: no reading says
    some of the values, and another value's letters are nearer to the garble in their place, so the letters
    doubt them. The audio bears each order out over every other by twice the lead a command needs: carried
    out, not asked back."""
    cfg = load_config(COFFEE_EXAMPLE)
    cfg.state_dir = str(tmp_path)
    a, _, _ = make_assistant(cfg)
    for said, voice, slots in GARBLED_ORDERS:
        heard = a.understanding.hear(a.engines.asr, utterance(0.3, espeak(said, *voice), 1.0))
        assert heard.intent is not None and heard.intent.slots == slots, (said, heard.text, heard.intent)
        assert heard.intent.confidence >= a.cfg.understand.act_threshold, (said, heard.text, heard.intent)


OUT_OF_GRAMMAR = [  # (said, its voice, what the readings say clearly that the grammar's nearest sentence drops)
    ("can I get a large latte with oat milk and two sugars", ("en-us", 160), "two sugars"),
    ("I'd like a medium mocha with almond milk and no sugar", ("en-gb-x-rp", 160), "no sugar"),
    ("a regular light roast quad shot hot chocolate", ("en-us", 160), "quad shot"),
]


def test_an_order_the_grammar_cannot_say_is_asked_back_not_served_without_what_it_drops(
        tmp_path, make_assistant, monkeypatch):
    """The coffee bar's grammar holds sugar only with a roast, and a roast with shots only with milk and
    sugar: each of these orders, heard word for word, was served as the nearest sentence the grammar has,
    without its sugars or shots, at confidence 1.0. A value said clearly and left out is asked back."""
    cfg = load_config(COFFEE_EXAMPLE)
    cfg.state_dir = str(tmp_path)
    a, _, _ = make_assistant(cfg)
    u, asr, act = a.understanding, a.engines.asr, a.cfg.understand.act_threshold
    for said, voice, dropped in OUT_OF_GRAMMAR:
        audio = utterance(0.3, trimmed(espeak(said, *voice)), 0.5)
        heard = u.hear(asr, audio)
        assert dropped in heard.text.lower(), (said, heard.text)  # it was heard
        assert heard.intent is None or heard.intent.confidence < act, (said, heard.text, heard.intent)
        with monkeypatch.context() as m:  # without the rule, as before: served
            m.setattr(GrammarGraph, "leaves_out", lambda *_: False)
            served = u.hear(asr, audio).intent
        assert served is not None and served.confidence >= act and dropped.split()[0] not in served.text, served


RARE_WORD_ORDERS = [  # (said, its voice, slots meant): each was a cappuccino, at 0.62 and 0.64, by fit alone
    ("I'd like a regular cortado with almond milk", ("en-gb-x-rp", 150),
     {"size": "medium", "drink": "cortado", "milk": "almond"}),
    ("a tall cortado please", ("en-gb-x-rp", 150), {"size": "small", "drink": "cortado"}),
]


def test_a_word_the_decoder_seldom_writes_is_heard_over_one_it_likes(tmp_path, make_assistant, monkeypatch):
    """Whisper read "I'd like a regular cotado with almond milk." and still fitted "cappuccino" to the audio
    better than "cortado": it finds "cortado" unlikely whatever is said. Weighed against how likely each is
    with nothing said, the word said wins, and is acted on."""
    a, _, _ = make_assistant(coffee_home(tmp_path, EXAMPLE_COFFEE))
    u, asr = a.understanding, a.engines.asr
    for said, voice, slots in RARE_WORD_ORDERS:
        audio = utterance(0.4, trimmed(espeak(said, *voice)), 0.8)
        heard = u.hear(asr, audio)
        assert heard.intent is not None and heard.intent.slots == slots, (said, heard.text, heard.intent)
        assert heard.intent.confidence >= a.cfg.understand.act_threshold, (said, heard.text, heard.intent)
        with monkeypatch.context() as m:  # by fit alone, as before
            m.setattr(rescore, "PRIOR_WEIGHT", 0.0)
            alone = u.hear(asr, audio).intent
        assert alone is None or alone.slots != slots or alone.confidence < a.cfg.understand.act_threshold, alone


def test_the_prior_is_the_fit_with_nothing_said_and_kept(asr):
    texts = ["A tall cortado, please.", "A tall hot chocolate, please."]
    prior = asr.prior(texts)
    assert prior == asr.score(asr.encode(np.zeros(16000, dtype=np.int16)), texts)
    assert prior[1] > prior[0]  # what the decoder likes, with nothing said
    asr._priors["A tall cortado, please."] = 1.0  # kept: not scored again
    assert asr.prior(texts[:1]) == [1.0]
    asr._priors.clear()

"""Listening closely: several readings of the audio, weighed against what this home can be asked.

A small Whisper model transcribing freely often gets two words of a command wrong, and its best guess is
not always its only plausible one. So instead of one transcript:

1. the decoder reads the audio once, greedily (first over a shorter window: see `hear`); if that reading
   is not a sentence of this home word for word, its beam keeps its `n` best readings, each with its
   average log-probability; each is understood, and the one that is both likely and closest to a
   sentence this home accepts wins (an exact template match beats a snap, a likelier reading beats a
   less likely one);
2. unless that reading matched a template exactly (and is not an on/off: the one word that flips the
   meaning is the one most often misheard; nor an order of the user's grammar, weighed against the same
   order with each value changed for the one most like it), the decoder is asked how well the home's
   nearest sentences fit the audio: the snap's shortlist for the top readings, each on/off command's
   opposite, and the nearest two with one slot changed (every other colour, every other device or area);
   and the user's own grammar's nearest paths to the top readings (paths.py, whatever its size), with the
   nearest one's slots changed one at a time.
   The one the audio bears out best is the reading: its fit, less half its fit with nothing said (the
   decoder's own liking for "hot chocolate" over a "cortado" it seldom writes); its lead over the best
   sentence that means something else is the confidence (a lead per token, worth more in a sentence longer
   than a usual command). If even the best-fitting command fits far worse than what was freely heard
   (scored the same way), what was said is not a command at all, and no snap is made of it.

Costs one encoding of the audio over a short window and a greedy decoding and, when that is not heard
exactly and borne out, an encoding over the full window and a beam of `n` (two to three times a greedy
decoding), and, when the check runs, a teacher-forced pass of the decoder per candidate sentence (at most
`MAX_CANDIDATES`, in batches; a few milliseconds each, see FasterWhisper.score), and one more on silence
for a sentence not weighed before (FasterWhisper.prior keeps them).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass

from ..engines.base import Hypothesis, NBestAsr
from ..home.actions import targets
from ..types import Intent, Source
from .fuzzy import words
from .paths import GrammarGraph, tokens
from .steered import steered, steering

WEIGHT = 0.2  # confidence traded per nat of average log-probability when choosing among the readings
SPREAD = 1.0  # readings this much less likely (nats per token) than the best are not considered
MARGIN = 0.3  # a lead this large (nats per token) over the best other meaning gives act-level confidence
USUAL_TOKENS = 8  # ... in a sentence of about this many tokens ("turn off the lights in the living room")
PRIOR_WEIGHT = 0.5  # the share of a sentence's likelihood with nothing said taken off its fit (see weigh)
GAP = 2.0  # a command fitting this much worse than the free transcript means it was not a command
UNSURE_GAP = 1.5  # one fitting this much worse is at best asked back
MAX_CANDIDATES = 32
STEERED_VARIANTS = 3  # values tried in place of each slot of the best steered reading
ENDED = 6  # candidates whose end of text is read too (the likeliest: the best and its rivals)
SHORTLIST = 3  # nearest sentences taken from each of the top two readings
VERB_READINGS = 1  # readings searched for a clearly heard "on" or "off" (lower ones hear "fall on the")
FAMILY_LEAD = 0.25  # a lead in closeness that leaves the home's or the grammar's sentences out
GRAMMAR_PATHS = 4  # nearest paths of the user's grammar taken from each of the top two readings
FARTHER = 3.0  # grammar paths this many word edits farther from what was heard than the nearest are left out
ALIKE_VALUES = 1  # values weighed in place of each of an order heard word for word (alike_orders)
GRAMMAR_VARIANTS = 12  # values tried in place of each slot, not heard as it is, of the two nearest meanings


@dataclass
class Heard:
    text: str  # the recogniser's best free transcript
    intent: Intent | None  # what was understood, confidence set by the checks above
    readings: list[Hypothesis]  # the beam's readings, best first
    checked: dict[str, float] | None = None  # candidate sentence -> fit to the audio, when checked
    free_fit: float | None = None  # the best free transcript's fit, scored the same way


def meaning(intent: Intent | None, registry):
    """What an intent does, by the devices it reaches ("the bedroom lights" is "the bedroom light" in a
    bedroom with one light)."""
    if intent is None or intent.unknown_name:
        return None
    if intent.source is Source.CUSTOM or intent.domain == "assistant":  # the slots say what it does
        return (intent.name, tuple(sorted((k, str(v)) for k, v in intent.slots.items())))
    reached = tuple(sorted(d.id for d in targets(intent, registry)[0]))
    return (intent.name, reached or (intent.device_ids, intent.area, intent.all_devices), intent.brightness,
            intent.color)


def as_spoken(sentence: str, mark: str = ".") -> str:
    """A home sentence written as Whisper writes what it hears: "Set the lamp to 30%.", closed with `mark`
    (see closing); one the decoder wrote itself ("A cortado, tall?") is left as it is."""
    if sentence[-1:] in (".", "?", "!"):
        return sentence
    s = re.sub(r"(\d+) percent\b", r"\1%", sentence.strip())
    s = re.sub(r"\bi\b", "I", s)  # "can I have", "I'd like": never a small i
    return s[:1].upper() + s[1:] + mark


def closing(readings: list) -> str:
    """How the likeliest reading closes, "?" or ".": the grammar's sentences are weighed closed as the
    decoder heard the voice close, so that they meet what it wrote itself on even terms ("Can I get a chai
    latte grande?" fits the audio far better than the same words with a full stop)."""
    return "?" if readings and readings[0].text.rstrip().endswith("?") else "."


def verb(sentence: str) -> str | None:
    """"on" or "off" when a sentence has exactly one of them ("turn on the lamp", "turn the lamp off")."""
    found = [w for w in sentence.split() if w in ("on", "off")]
    return found[0] if len(found) == 1 else None


def flipped(sentence: str) -> str | None:
    """An on/off sentence's opposite ("turn on the lamp" -> "turn off the lamp")."""
    if (v := verb(sentence)) is None:
        return None
    other = "off" if v == "on" else "on"
    return " ".join(other if w == v else w for w in sentence.split())


def heard_verb(readings: list) -> str | None:
    """The on/off word of the likeliest readings that have exactly one of them ("turn the knob on ...")."""
    for h in readings[:VERB_READINGS]:
        if v := verb(" ".join(re.findall(r"[a-z]+", h.text.lower()))):
            return v
    return None


def _meaning(snap, understand, sentence: str, registry, known: dict[str, Intent]):
    """What a home sentence does, remembered with the home's sentences (parsing costs milliseconds);
    `known`: sentences whose intent is known already (the grammar's paths)."""
    if sentence in known:
        return meaning(known[sentence], registry)
    if sentence not in snap.understood:
        snap.understood[sentence] = meaning(understand(sentence), registry)
    return snap.understood[sentence]


def _once_each(understand, clean):
    """`understand`, asked once for each text as it is cleaned: the beam's readings often differ only in
    case and punctuation, and each look-up costs milliseconds."""
    seen: dict[str, Intent | None] = {}

    def once(text: str) -> Intent | None:
        key = clean(text)
        if key not in seen:
            seen[key] = understand(text)
        return seen[key]
    return once


def choose(readings: list, understand) -> tuple[object, Intent | None]:
    """The reading (and its intent) that is likely and understood best."""
    best, top = None, readings[0].logprob
    for h in readings:
        if h.logprob < top - SPREAD:
            continue
        i = understand(h.text)
        if i is None or i.unknown_name:
            continue
        s = i.confidence + WEIGHT * (h.logprob - top)
        if best is None or s > best[0]:
            best = (s, h, i)
    if best is None:
        i = understand(readings[0].text)
        return readings[0], i
    return best[1], best[2]


def grammar_paths(grammars: list[GrammarGraph], readings: list, clean) -> tuple[dict[str, Intent], float, set[str]]:
    """The grammars' sentences nearest to the top readings (the user's own, the box's everyday ones), and
    the two nearest meanings' one-slot variants, each with its intent taken from its path; only those the
    readings say enough of and echo a word of (see GrammarGraph.heard_enough, echoes), and for a reading
    that is a fragment (GrammarGraph.fragment), only those that say its words as they are. And how close
    the nearest is to its reading, 0..1, and which of them have a slot value that no reading says and whose
    letters are far less like the words heard in its place than another value's ("latte" for "klotago"):
    the audio and the letters disagree, and the audio must be twice as sure (weigh)."""
    # readings that differ only in case or punctuation ("A cortado, tall." and "a cortado tall") are searched once
    texts = list(dict.fromkeys(clean(h.text) for h in readings[:2]))
    found = [(g, p, text) for g in grammars for text in texts for p in g.nearest(text, GRAMMAR_PATHS)]
    # A path that shares no word that says something with what was heard is the grammar's invention, however
    # short the search made it ("tell me the time" for "Living room.", two words as four); a word or two
    # heard stand for a path only where it says them and nothing else that matters ("large latte please":
    # "a large latte please", not "drip coffee": "a dark coffee").
    found = [(g, p, text) for g, p, text in found
             if g.echoes(p, text) and (not g.fragment(text) or g.says_only(p, text))]
    if not found:
        return {}, 0.0, set()
    closeness = max(0.0, max(1 - p.cost / max(len(tokens(h)), 1) for _, p, h in found))
    found.sort(key=lambda x: x[1].cost)
    # A sentence that takes many more edits than the nearest to become what was heard is not worth weighing
    # ("turn the volume down" for "can I get a large latte without nope").
    found = [f for f in found if f[1].cost <= found[0][1].cost + FARTHER]
    # The one-slot variants of the two nearest meanings, taking turns: the nearest may have taken a misheard
    # slot for another ("lathe without" for "flat white", where "with oat milk" was said).
    two: list = []
    for g, p, h in found:
        if len(two) < 2 and all(p.meaning != q.meaning for _, q, _ in two):
            two.append((g, p, h))
    variants = [[(g, v, h) for v in g.variants(p, per_slot=GRAMMAR_VARIANTS)] for g, p, h in two]
    paths = found + [v for pair in itertools.zip_longest(*variants) for v in pair if v]
    forms = {t[0]: w for r in readings for w in words(r.text) if len(t := tokens(w)) == 1}
    out: dict[str, Intent] = {}
    doubtful: set[str] = set()
    heard = [tokens(clean(r.text)) for r in readings]
    for g, p, reading in paths:
        said = p.said_as(forms)
        # Enough of it said by the reading it was found from: another reading, far down the beam, may be
        # anything ("That's great soul" for a lone "espresso" is three words, as many as "a small espresso").
        if said not in out and g.heard_enough(p, reading):
            out[said] = _intent(g, p)
            if g.doubtful(p, heard):
                doubtful.add(said)
    return out, closeness, doubtful


def alike_orders(grammars: list[GrammarGraph], heard: str, clean) -> dict[str, Intent]:
    """An order of the user's grammar heard word for word, and the same order with each value in turn
    changed for the `ALIKE_VALUES` of its list most like it, written as it was heard, each with its intent."""
    out: dict[str, Intent] = {}
    for g in grammars:
        for path in g.nearest(clean(heard), 1):
            if path.cost > 0:
                continue
            out[heard] = _intent(g, path)
            for v in g.variants(path, per_slot=ALIKE_VALUES, every_slot=True):
                out.setdefault(_swapped(heard, path, v), _intent(g, v))
    return out


def to_check(readings: list, intent: Intent | None, exact: bool, said: str | None, understander,
             understand, known: dict[str, Intent] | None = None, known_closeness: float = 0.0) -> list[str]:
    """The home's sentences worth weighing on the audio, likeliest first: the understood one and the
    nearest ones to the top readings; for the two nearest, the same words with one slot changed (another
    colour, another device or area: a misheard name or colour is the commonest miss); each followed by its
    on/off opposite unless the readings clearly heard one of the two words (`said`). With `known`, the
    user's grammar's sentences (and how close the nearest is, 0..1): the two take turns, unless one
    is far nearer to what was heard than the other (weighing a sentence costs milliseconds)."""
    snap, home = understander.snap, understander.registry
    known = known or {}
    nearest: list[str] = []
    if intent is not None and not intent.unknown_name:
        nearest.append(intent.text)
    if not exact:
        short = [x for h in readings[:2] for x in snap.shortlist(understander.clean(h.text), SHORTLIST)]
        closeness = max((c for _, c in short), default=0.0)
        if known and known_closeness > closeness + FAMILY_LEAD:
            short = []
        elif known and closeness > known_closeness + FAMILY_LEAD:
            known = {}
        nearest += [s for s, _ in short]
    nearest = list(dict.fromkeys(nearest))
    if not exact:
        nearest += [v for s in nearest[:2] for v in snap.variants(s)]
    candidates = [c for s in dict.fromkeys(nearest) for c in (s, flipped(s)) if c]
    candidates = [s for s in dict.fromkeys(candidates) if _meaning(snap, understand, s, home, known) is not None
                  and any(snap.action_heard(s, r.text) for r in readings)]
    if known:  # the grammar's paths take turns with the home's sentences, nearest first
        own = [s for s in known if s not in candidates]
        candidates = [s for pair in itertools.zip_longest(own, candidates) for s in pair if s]
    if not exact and said:
        # Weighing "on" against "off" on the audio is least reliable where the rest was misheard; a free
        # transcript that still has one of the two words clearly is the better witness for it.
        candidates = [s for s in candidates if verb(s) in (None, said)]
    return once_spoken(candidates, closing(readings))[:MAX_CANDIDATES]


def once_spoken(sentences: list[str], mark: str = ".") -> list[str]:
    """Each sentence once as the decoder is asked to read it (as_spoken): "i'd like a large latte" found
    by the text search and "I'd like a large latte." read by the steered decoder are one sentence, weighed
    once, and the place it took is left for another."""
    first: dict[str, str] = {}
    for s in sentences:
        first.setdefault(as_spoken(s, mark), s)
    return list(first.values())


def _exact(intent: Intent | None) -> bool:
    """Heard as the templates or the user's grammar say it, word for word (perhaps naming a device the
    home does not have: "turn on the memory light")."""
    return intent is not None and intent.confidence >= 1 and intent.source is not Source.FUZZY


def read(asr: NBestAsr, encoded, hotwords: str | None, understand, n: int, greedy: bool = True
         ) -> tuple[list, Intent | None]:
    """The readings of the encoded audio (best first) and what the likeliest understood one means: one
    greedy reading first, as the beam costs two to three times as much and a reading that is a sentence of
    this home as it is needs no other; else the beam's `n` readings, which may name the device this home
    has ("the memory light" for "the battery light"). `greedy` False: the beam at once."""
    readings, intent = [], None
    if greedy or n == 1:
        readings = asr.hypotheses(encoded, hotwords, 1)
        intent = choose(readings, understand)[1] if readings else None
        if not readings or n == 1 or _exact(intent) and not intent.unknown_name:
            return readings, intent
    if beam := asr.hypotheses(encoded, hotwords, n):  # else the greedy reading, if any
        readings, intent = beam, choose(beam, understand)[1]
    return readings, intent


def hear(asr: NBestAsr, audio, hotwords: str | None, understander, understand, n: int = 4, check: bool = True,
         unsure: float = 0.75, grammars: list[GrammarGraph] = (), steer: bool = True) -> Heard:
    """`understand`: text -> Intent (the conductor's, custom intents first); `understander`: the
    templates (its `snap` lists the home's sentences, `clean` normalises text); `unsure`: the confidence
    given to an exactly heard on/off whose opposite fits the audio almost as well (one that asks back);
    `grammars`: the user's own intents and the box's everyday ones as graphs, whose nearest paths are
    weighed too; `steer`: the user's own grammar is also read straight from the audio (steered.py) where
    the free reading is not a sentence of this home as it is.

    A quick reading first, over a shorter window where the recogniser has one (`first_shorter`, half the
    encoder's work): it loses a word more often, and weighs "on" against "off" less surely, so it stands
    only where it is a sentence of this home word for word and the audio check bears it out as it is.
    Anything else is read again over the full window."""
    understand = _once_each(understand, understander.clean)
    args = (asr, understander, understand, check, unsure, grammars, steer)
    quick_missed = False  # the quick reading was not a sentence of this home: the full window's beam at once
    if asr.first_shorter:
        encoded = asr.encode(audio, first=True)
        readings, intent = read(asr, encoded, hotwords, understand, 1)
        if readings and _exact(intent) and not intent.unknown_name:
            heard = weigh(encoded, readings, intent, *args)
            if heard.intent is intent:  # borne out as it is
                return heard
        else:
            quick_missed = bool(readings)
    encoded = asr.encode(audio)
    readings, intent = read(asr, encoded, hotwords, understand, n, greedy=not quick_missed)
    return weigh(encoded, readings, intent, *args)


def steered_paths(asr, encoded, grammars: list[GrammarGraph], readings: list, also: list[dict] = ()
                  ) -> tuple[dict[str, Intent], set[str]]:
    """The sentences of these grammars the audio reads as best when its decoding may say nothing else
    (steered.py), each with the intent and slots of its path, and the best one's one-slot variants (its
    rivals: the decoder chose each value, the audio says how sure that was; and with the values the text
    search found for its slots, `also`: GrammarGraph.variants). Only those the free reading says enough of
    and echoes a word of (GrammarGraph.heard_enough, echoes), and none when it is a word or two: the
    steered decoding always finds some sentence, and a single word ("blue", read "The building.") is no
    order, whatever the grammar makes of it. And which of them have a value no reading says, whose letters
    are far less like the words heard in its place than another value's (GrammarGraph.doubtful: "hot
    chocolate" where "Klotago" was heard): the decoder's prior may have chosen it, not the audio."""
    out: dict[str, Intent] = {}
    doubtful: set[str] = set()
    if asr.steerable() is None:  # (a model file it could not read: said once)
        return out, doubtful
    heard = readings[0].text
    said = [tokens(r.text) for r in readings]
    for g in grammars:
        if g.fragment(heard):
            continue
        found = steered(asr, encoded, steering(g, asr.token_ids))
        for path, written, _ in found:
            if not (g.heard_enough(path, heard) and g.echoes(path, heard)):
                continue
            path = g.aligned(path, heard)
            found_here = [(written, path)]
            if len(out) == 0:
                found_here += [(_swapped(written, path, v), v)
                               for v in g.variants(path, per_slot=STEERED_VARIANTS, every_slot=True, also=also)]
            for text, p in found_here:
                if text not in out:  # weighed as the decoder wrote it: "A cortado, tall."
                    out[text] = _intent(g, p)
                    if g.doubtful(p, said):
                        doubtful.add(text)
    return out, doubtful


def _leaves_out(sentence: str, known: dict[str, Intent], grammars: list[GrammarGraph], readings: list,
                understander) -> bool:
    """A grammar's sentence that leaves out a value the readings clearly said (GrammarGraph.leaves_out): at
    best asked back, for the order was more than the sentence says."""
    if sentence not in known:
        return False
    heard = [tokens(understander.clean(r.text)) for r in readings]
    meant = known[sentence]
    return any(g.leaves_out(sentence, meant.slots, heard) for g in grammars if g.domain == meant.domain)


def _intent(g: GrammarGraph, path) -> Intent:
    """What a grammar's path means: its intent and slots, from the path (the user's own, or the box's)."""
    source = Source.CUSTOM if g.domain == "custom" else Source.TEMPLATE
    return Intent(name=path.intent, text=path.text, domain=g.domain, slots=dict(path.slots), source=source)


def _swapped(written: str, path, variant) -> str:
    """A variant written as the decoder wrote its path ("I'd like a big latte, please." for "I'd like a big
    coffee, please."), so that the two are weighed alike; else as the grammar writes it."""
    for (_, _, _, at), (_, _, _, vat) in zip(path.spans, variant.spans):
        if path.spelled[at] != variant.spelled[vat]:
            for old in dict.fromkeys([path.spelled[at], " ".join(tokens(path.spelled[at]))]):
                pattern = re.compile(r"\b" + re.escape(old) + r"\b", re.IGNORECASE)
                if len(pattern.findall(written)) == 1:
                    return pattern.sub(lambda _: variant.spelled[vat], written)
    return variant.text


def weigh(encoded, readings: list, intent: Intent | None, asr: NBestAsr, understander, understand, check: bool,
          unsure: float, grammars: list[GrammarGraph], steer: bool = True) -> Heard:
    """The readings weighed against the home's sentences on the audio (see hear)."""
    if not readings:
        return Heard("", None, [])
    if not words(readings[0].text):
        # The likeliest reading has no words (". . . ." for a click or a hiss): nothing was said, whatever the
        # beam's lesser readings make of it ("Thank you very much" was once weighed as "turn off all the lights").
        return Heard(readings[0].text, None, readings)
    snap, home = understander.snap, understander.registry
    exact = _exact(intent)
    own = [g for g in grammars if g.domain == "custom"]
    # A command for a device this home does not have may be the user's own order misheard: "flat white wind
    # skinned milk" is a light set to white. Their grammar is weighed on the audio as for any other reading.
    searched = not exact or bool(own and intent.unknown_name)
    # An order heard word for word may still have one value misheard as another of its list ("thin crust" for
    # "thick crust"): like an on/off, it is weighed against the values most like its own.
    order = exact and not searched and intent.source is Source.CUSTOM
    if not check or snap is None or not searched and not order and verb(intent.text) is None:
        return Heard(readings[0].text, intent, readings)
    said = heard_verb(readings)
    mark = closing(readings)
    known, closeness, doubtful = (grammar_paths(grammars, readings, understander.clean) if grammars and searched
                                  else ({}, 0.0, set()))
    if order:  # weighed as the reading it was heard in wrote it
        heard = next((r.text for r in readings if understander.clean(r.text) == intent.text), readings[0].text)
        known = alike_orders(own, heard, understander.clean)
        if not known:
            return Heard(readings[0].text, intent, readings)
        candidates = once_spoken(list(known), mark)
    else:
        candidates = to_check(readings, intent, exact, said, understander, understand, known, closeness)
    # The user's grammar also read straight from the audio, where the recogniser can be steered: it finds
    # what no reading came near ("Another close latte with no shoulder." for a dark roast latte with no sugar).
    steering = steer and searched and getattr(asr, "steers", False)
    steered_own = own if steering else []
    if steered_own:  # weighed first, whatever the free reading was
        found, unsure_found = steered_paths(asr, encoded, steered_own, readings,
                                            [i.slots for i in known.values() if i.source is Source.CUSTOM])
        known, doubtful = {**found, **known}, doubtful | unsure_found
        candidates = once_spoken([*found, *candidates], mark)[:MAX_CANDIDATES]
    if not candidates:
        return Heard(readings[0].text, intent, readings)
    meanings = {s: _meaning(snap, understand, s, home, known) for s in candidates}
    # The free reading is scored the same way, so that the two fits are comparable.
    # Weighed without the hint: every sentence is read again in full after the prompt, so a prompt of
    # device names doubles the cost, and it would favour its own words.
    *fits, free = asr.score(encoded, [as_spoken(s, mark) for s in candidates] + [readings[0].text])
    fit = dict(zip(candidates, fits))
    if steered_own and asr.steers:
        # The likeliest few, and the free reading, with the end of text after them counted: "I'll take a
        # flat white" fits "I'll take a flat white with whole milk" as well as the whole does, word for word.
        # (Only where the steerable decoder is in use: it costs its memory, and the home's own sentences
        # were calibrated without it.)
        top = sorted(candidates, key=fit.get, reverse=True)[:ENDED]
        *ended, free = asr.with_ends(encoded, [as_spoken(s, mark) for s in top] + [readings[0].text],
                                     [fit[s] for s in top] + [free])
        fit.update(zip(top, ended))
    if free - max(fit.values()) > GAP:
        # No command fits nearly as well as what was heard: speech that is not for us, or a command for a
        # device this home does not have (answered as such).
        if not exact:
            top = understand(readings[0].text)
            intent = top if top is not None and top.unknown_name else None
        return Heard(readings[0].text, intent, readings, fit, free)
    # What the audio says for each, beyond what the decoder expects of any audio: a rare word said
    # ("cortado") fits worse than a common one ("hot chocolate") that was not said, less so once each is
    # weighed against how likely the decoder finds it with nothing said (written as the grammar writes it,
    # closed as the reading closes: how the decoder punctuated a sentence is no word of it). The best is one
    # that fits nearly as well as what was heard: a sentence the audio does not bear out is not made likely
    # by being rare.
    spoken = [as_spoken(known[s].text if s in known else s, mark) for s in candidates]
    prior = dict(zip(candidates, asr.prior(spoken)))
    evidence = {s: fit[s] - PRIOR_WEIGHT * prior[s] for s in candidates}
    best = max((s for s in candidates if free - fit[s] <= GAP), key=evidence.get)
    rival = max((s for s in candidates if meanings[s] != meanings[best]), key=evidence.get, default=None)
    lead = evidence[best] - evidence[rival] if rival is not None else 9.0
    if rival is not None:
        # A lead per token, in a sentence longer than a home's usual command, is more evidence in all: the
        # words that differ ("two sugars", "sugar") are a smaller share of it.
        shorter = min(len(asr.token_ids(" " + as_spoken(s, mark))) for s in (best, rival))  # its tokens
        lead *= max(1.0, shorter / USUAL_TOKENS)
    if verb(best) and not said:
        lead /= 2  # on or off, and neither word was heard: the audio alone must be twice as sure
    # A sentence without slots that no reading says is the grammar's guess at other words ("tell me the
    # time" for "Tell me a joke."): at best asked. A value no reading says, whose letters are unlike what was
    # heard in its place, is one the letters doubt and the audio chose: the audio alone must be twice as sure
    # (read "ground-shot-hot-hot-hot", a quad shot hot chocolate is; one that leaves the skimmed milk out
    # of "in-skin film" is not).
    guessed = best in doubtful and not known[best].slots
    if best in doubtful and not guessed:
        lead /= 2
    confidence = min(1.0, 0.6 + 0.2 * lead / MARGIN)  # a lead of MARGIN gives 0.8, the default act threshold
    if free - fit[best] > UNSURE_GAP or guessed or _leaves_out(best, known, grammars, readings, understander):
        confidence = min(confidence, unsure)
    if exact and meaning(intent, home) == meanings[best]:
        # Heard exactly, and the audio agrees: keep it unless its opposite fits almost as well.
        return Heard(readings[0].text, intent if lead >= MARGIN else dataclasses.replace(intent, confidence=unsure),
                     readings, fit, free)
    chosen = known.get(best) or understand(best)
    source = Source.CUSTOM if chosen.source is Source.CUSTOM else Source.FUZZY  # the user's own keep their route
    return Heard(readings[0].text, dataclasses.replace(chosen, source=source, confidence=round(confidence, 3)),
                 readings, fit, free)

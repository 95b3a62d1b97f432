"""Listening closely: several readings of the audio, weighed against what this home can be asked.

A small Whisper model transcribing freely often gets two words of a command wrong, and its best guess is
not always its only plausible one. So instead of one transcript:

1. the decoder's beam keeps its `n` best readings, each with its average log-probability; each is
   understood, and the one that is both likely and closest to a sentence this home accepts wins (an
   exact template match beats a snap, a likelier reading beats a less likely one);
2. unless that reading matched a template exactly (and is not an on/off: the one word that flips the
   meaning is the one most often misheard), the decoder is asked how well the home's nearest sentences
   (the snap's shortlist for the top readings, and each on/off command's opposite) fit the audio.
   The best-fitting one is the reading; its lead over the best-fitting sentence that means something
   else is the confidence. If even the best-fitting command fits far worse than what was freely heard,
   what was said is not a command at all, and no snap is made of it.

Costs one encoding of the audio (as before), a beam of `n` instead of greedy decoding, and, when the
check runs, a teacher-forced pass of the decoder per candidate sentence (at most `MAX_CANDIDATES`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..types import Intent

WEIGHT = 0.2  # confidence traded per nat of average log-probability when choosing among the readings
SPREAD = 1.0  # readings this much less likely (nats per token) than the best are not considered
MARGIN = 0.3  # a lead this large (nats per token) over the best other meaning gives act-level confidence
GAP = 2.0  # a command fitting this much worse than the free transcript means it was not a command
MAX_CANDIDATES = 6
SHORTLIST = 3  # nearest sentences taken from each of the top two readings

ON_OFF = ("HassTurnOn", "HassTurnOff")


@dataclass
class Heard:
    text: str  # the recogniser's best free transcript
    intent: Intent | None  # what was understood, confidence set by the checks above
    readings: list  # the beam's readings (Hypothesis), best first
    checked: dict[str, float] | None = None  # candidate sentence -> fit to the audio, when checked


def meaning(intent: Intent | None):
    if intent is None or intent.unknown_name:
        return None
    return (intent.name, intent.device_ids, intent.area, intent.all_devices, intent.brightness, intent.color)


def as_spoken(sentence: str) -> str:
    """A home sentence written as Whisper writes what it hears: "Set the lamp to 30%."."""
    s = re.sub(r"(\d+) percent\b", r"\1%", sentence.strip())
    return s[:1].upper() + s[1:] + "."


def flipped(sentence: str) -> str | None:
    """The on/off command's opposite ("turn on the lamp" -> "turn off the lamp")."""
    w = sentence.split()
    if len(w) > 2 and w[0] in ("turn", "switch") and w[1] in ("on", "off"):
        return " ".join([w[0], "off" if w[1] == "on" else "on", *w[2:]])
    return None


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


def hear(asr, audio, hotwords: str | None, understander, understand, n: int = 4, check: bool = True,
         unsure: float = 0.75) -> Heard:
    """`understand`: text -> Intent (the conductor's, custom intents first); `understander`: the
    templates (its `snap` lists the home's sentences, `clean` normalises text); `unsure`: the confidence
    given to an exactly heard on/off whose opposite fits the audio almost as well (one that asks back)."""
    encoded = asr.encode(audio)
    readings = asr.hypotheses(encoded, hotwords, max(1, n))
    if not readings:
        return Heard("", None, [])
    _, intent = choose(readings, understand)
    snap = understander.snap
    exact = intent is not None and intent.confidence >= 1 and intent.source != "fuzzy"
    if not check or snap is None or intent is not None and intent.source == "custom" or (
            exact and intent.name not in ON_OFF):
        return Heard(readings[0].text, intent, readings)
    # The sentences to check: the understood one, the nearest ones to the top readings, and opposites.
    candidates: list[str] = []
    if intent is not None and not intent.unknown_name:
        candidates.append(intent.text)
    if not exact:
        for h in readings[:2]:
            candidates += [s for s, _ in snap.shortlist(understander.clean(h.text), SHORTLIST)]
    candidates += [f for s in candidates if (f := flipped(s))]
    candidates = list(dict.fromkeys(candidates))[:MAX_CANDIDATES]
    meanings = {s: meaning(understand(s)) for s in candidates}
    candidates = [s for s in candidates if meanings[s] is not None]
    if not candidates:
        return Heard(readings[0].text, intent, readings)
    fit = dict(zip(candidates, asr.score(encoded, [as_spoken(s) for s in candidates], hotwords)))
    best = max(candidates, key=fit.get)
    if readings[0].logprob - fit[best] > GAP:
        # No command fits nearly as well as what was heard: speech that is not for us.
        return Heard(readings[0].text, intent if exact else None, readings, fit)
    rival = max((fit[s] for s in candidates if meanings[s] != meanings[best]), default=fit[best] - 9)
    lead = fit[best] - rival
    confidence = min(1.0, 0.6 + 0.2 * lead / MARGIN)  # a lead of MARGIN gives 0.8, the default act threshold
    if exact and meaning(intent) == meanings[best]:
        # Heard exactly, and the audio agrees: keep it unless its opposite fits almost as well.
        return Heard(readings[0].text, intent if lead >= MARGIN else dataclasses.replace(intent, confidence=unsure),
                     readings, fit)
    chosen = understand(best)
    return Heard(readings[0].text, dataclasses.replace(chosen, source="fuzzy", confidence=round(confidence, 3)),
                 readings, fit)

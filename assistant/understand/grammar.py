"""The neutral structure of custom intents (`Grammar`), which every source fills (the config's tables,
hassil's YAML, Rhasspy's sentences.ini), and its check: what a grammar must be to be matched safely."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from hassil import Intents

from ..config import ConfigError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # safe as one MQTT topic level

# Words people put around a command that change nothing; hassil skips them anywhere in a sentence.
FILLER = ["please", "could you", "can you", "would you", "will you", "kindly", "uh", "um", "er", "hmm",
          "ok", "okay", "now", "for me", "thanks", "thank you", "just", "go ahead and"]


class GrammarError(ConfigError):
    """A problem in the user's intents, phrased for the user (it names the file and the key)."""


@dataclass
class SlotValue:
    said: str  # what people say ("study")
    value: str | None = None  # what it means ("office"); None: the same as said


@dataclass
class SlotList:
    values: list[SlotValue] = field(default_factory=list)
    range: tuple[int, int, int] | None = None  # from, to, step (inclusive), for numbers


@dataclass
class CustomIntent:
    name: str
    sentences: list[str]
    reply: str = ""  # may use {slot} values
    gives: dict[str, dict[str, str]] = field(default_factory=dict)  # a sentence -> slot values it gives unsaid


@dataclass
class Grammar:
    intents: dict[str, CustomIntent] = field(default_factory=dict)
    lists: dict[str, SlotList] = field(default_factory=dict)
    skip_words: list[str] = field(default_factory=list)  # the grammar's own, skipped as FILLER is

    def merge(self, other: "Grammar", where: str) -> None:
        for name, it in other.intents.items():
            if name in self.intents:
                self.intents[name].sentences += it.sentences
                self.intents[name].reply = self.intents[name].reply or it.reply
                self.intents[name].gives.update(it.gives)
            else:
                self.intents[name] = it
        for name, sl in other.lists.items():
            if name in self.lists:
                raise GrammarError(f"{where}: the slot list {name!r} is defined twice")
            self.lists[name] = sl
        self.skip_words += [w for w in other.skip_words if w not in self.skip_words]


def check(g: Grammar, file: str) -> None:
    for name, it in g.intents.items():
        where = f"{file}: intent {name!r}"
        if not NAME_RE.match(name):
            raise GrammarError(f"{where}: the name should be letters, digits and _ (it becomes an MQTT topic)")
        if not it.sentences:
            raise GrammarError(f"{where}: no sentences")
        used = set()
        for s in it.sentences:
            used |= set(re.findall(r"\{(\w+)(?::\w+)?\}", s))
        if missing := sorted(used - set(g.lists)):
            raise GrammarError(f"{where}: the slot list {missing[0]!r} is not defined")
        used |= {slot for given in it.gives.values() for slot in given}
        fields = {f for _, f, _, _ in string.Formatter().parse(it.reply) if f is not None} if it.reply else set()
        if unknown := sorted(f for f in fields if f not in used):
            raise GrammarError(f"{where}: the reply uses {{{unknown[0]}}}, which no sentence of it has")
    try:
        hassil_intents(g)
    except Exception as e:  # hassil's parse errors: unbalanced brackets and the like
        raise GrammarError(f"{file}: a sentence template does not parse: {e}") from None


def hassil_intents(g: Grammar, language: str = "en") -> Intents:
    lists = {}
    for name, sl in g.lists.items():
        if sl.range:
            lo, hi, step = sl.range
            lists[name] = {"range": {"from": lo, "to": hi, "step": step}}
        else:
            lists[name] = {"values": [{"in": v.said, "out": v.value if v.value is not None else v.said}
                                      for v in sl.values]}
    intents = {n: {"data": _blocks(it)} for n, it in g.intents.items()}
    d = Intents.from_dict({"language": language, "intents": intents, "lists": lists,
                           "skip_words": FILLER + g.skip_words})
    for n in g.intents:  # hassil parses lazily: make a bad template fail now, not mid-conversation
        for data in d.intents[n].data:
            _ = data.sentences
    return d


def _blocks(it: CustomIntent) -> list[dict]:
    """hassil's data blocks of an intent: its sentences in order, a block for each run that gives the same
    slot values unsaid."""
    out: list[dict] = []
    for sentence in it.sentences:
        given = it.gives.get(sentence, {})
        if out and out[-1]["slots"] == given:
            out[-1]["sentences"].append(sentence)
        else:
            out.append({"sentences": [sentence], "slots": given})
    return out

"""Custom intents: the user's own sentences for things that are not lights ("run the movie scene", "set
the office thermostat to 21 degrees").

They come from `[[intent]]` / `[[slot]]` tables in the config or from a sentences file in hassil's YAML
shape. Both are turned into the same neutral structure (`Grammar`, in grammar.py), which any other
source (a converter for Rhasspy's sentences.ini, say) can fill too. Matching is hassil's, so the
template syntax is its: `(a | b)` alternatives, `[optional words]`, `(x; y)` in any order, `{slot}`
lists and number ranges.

A recognised intent is only published and answered: the topic is built from the intent's configured
name, never from what was said.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

from hassil import recognize_best

from ..types import Intent, Source
from .grammar import (
    FILLER,
    CustomIntent,
    Grammar,
    GrammarError,
    SlotList,
    SlotValue,
    check,
    hassil_intents,
)

# -- sources ------------------------------------------------------------------------------------------


def from_config(cfg) -> Grammar:
    """`[[intent]]` and `[[slot]]` tables, plus `sentences_file` (relative to the config file): hassil's
    YAML, or Rhasspy's sentences.ini whose `$lists` are the `[[slot]]` tables."""
    file = str(cfg.path)
    g = Grammar()
    for i, it in enumerate(cfg.intent):
        if it.name in g.intents:
            raise GrammarError(f"{file}: 'intent[{i}].name': the intent {it.name!r} is declared twice")
        g.intents[it.name] = CustomIntent(it.name, list(it.sentences), it.reply)
    for i, s in enumerate(cfg.slot):
        where = f"{file}: 'slot[{i}]'"
        if s.name in g.lists:
            raise GrammarError(f"{where}: the slot list {s.name!r} is defined twice")
        if s.values and s.range:
            raise GrammarError(f"{where}: give either values or range, not both")
        g.lists[s.name] = SlotList(
            [SlotValue(v) for v in s.values] + [SlotValue(k, v) for k, v in s.synonyms.items()],
            _range(s.range, where) if s.range else None)
    if cfg.sentences_file:
        p = Path(cfg.path).parent / cfg.sentences_file
        if p.suffix.lower() == ".ini":
            from . import rhasspy_ini

            g.merge(rhasspy_ini.load(p, g.lists), f"{file}: 'sentences_file'")
        else:
            g.merge(load_file(p), f"{file}: 'sentences_file'")
    check(g, file)
    return g


def load_file(path: str | Path) -> Grammar:
    """A sentences file in hassil's YAML shape:

    intents:
      SetThermostat:
        data:
          - sentences: ["set [the] {room} thermostat to {temperature} [degrees]"]
        reply: "Setting the {room} thermostat to {temperature} degrees"
    lists:
      room: {values: [office, {in: study, out: office}]}
      temperature: {range: {from: 10, to: 30}}
    """
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8-sig")) or {}
    except FileNotFoundError:
        raise GrammarError(f"{p}: no such sentences file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise GrammarError(f"{p}: not a valid YAML sentences file: {e}") from None
    if not isinstance(raw, dict) or set(raw) - {"language", "intents", "lists", "version"}:
        raise GrammarError(f"{p}: expected the keys 'intents' and 'lists' at the top level")
    g = Grammar()
    for name, body in (raw.get("intents") or {}).items():
        where = f"{p}: 'intents.{name}'"
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise GrammarError(f"{where}: expected a table with a 'data' list")
        sentences = []
        for j, d in enumerate(body["data"]):
            s = d.get("sentences") if isinstance(d, dict) else None
            if not isinstance(s, list) or not all(isinstance(x, str) for x in s):
                raise GrammarError(f"{where}.data[{j}].sentences': expected a list of strings")
            sentences += s
        reply = body.get("reply", "")
        if not isinstance(reply, str):
            raise GrammarError(f"{where}.reply': expected a string")
        g.intents[str(name)] = CustomIntent(str(name), sentences, reply)
    for name, body in (raw.get("lists") or {}).items():
        where = f"{p}: 'lists.{name}'"
        if not isinstance(body, dict) or not ({"values", "range"} & set(body)):
            raise GrammarError(f"{where}: expected 'values' or 'range'")
        values = []
        for v in body.get("values") or []:
            if isinstance(v, (str, int, float)):
                values.append(SlotValue(str(v)))
            elif isinstance(v, dict) and "in" in v:
                values.append(SlotValue(str(v["in"]), None if v.get("out") is None else str(v["out"])))
            else:
                raise GrammarError(f"{where}.values': each value is a string or {{in: ..., out: ...}}")
        r = body.get("range")
        g.lists[str(name)] = SlotList(values, _range(r, where) if r else None)
    check(g, str(p))
    return g


def _range(r, where: str) -> tuple[int, int, int]:
    if isinstance(r, dict):
        r = [r.get("from"), r.get("to"), r.get("step", 1)]
    if not (isinstance(r, list) and len(r) in (2, 3) and all(isinstance(x, int) for x in r)):
        raise GrammarError(f"{where}: range should be [from, to] or [from, to, step] in whole numbers")
    lo, hi, step = (*r, 1) if len(r) == 2 else r
    if lo > hi or step < 1:
        raise GrammarError(f"{where}: range should go up from 'from' to 'to' with a positive step")
    return lo, hi, step


# -- matching -----------------------------------------------------------------------------------------


def _plain(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


class CustomIntents:
    def __init__(self, grammar: Grammar, language: str = "en"):
        self.grammar = grammar
        self.language = language
        self.intents = hassil_intents(grammar, language) if grammar.intents else None

    def __bool__(self) -> bool:
        return self.intents is not None

    def understand(self, text: str) -> Intent | None:
        """`text` is already cleaned (lower case, wake word stripped)."""
        if self.intents is None or not text:
            return None
        r = recognize_best(text, self.intents, language=self.language)
        if r is None:
            return None
        slots = {k: _plain(v.value) for k, v in r.entities.items()}
        return Intent(name=r.intent.name, text=text, domain="custom", slots=slots, source=Source.CUSTOM)

    def reply(self, intent: Intent) -> str:
        template = self.grammar.intents[intent.name].reply or "Done."
        return string.Formatter().vformat(template, (), _Blank(intent.slots))

    def vocabulary(self) -> list[str]:
        """Words worth hinting to the speech recogniser: slot values and the sentences' own words."""
        words = [v.said for sl in self.grammar.lists.values() for v in sl.values]
        for it in self.grammar.intents.values():
            for s in it.sentences:
                words += [w for w in re.findall(r"[a-z']+", re.sub(r"\{[^}]*\}", " ", s.lower()))
                          if len(w) > 3 and w not in FILLER]
        return list(dict.fromkeys(words))


class _Blank(dict):
    """Slots for a reply: an optional slot that was not said reads as nothing."""

    def __missing__(self, key):
        return ""

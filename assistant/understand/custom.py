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
    NAME_RE,
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
    """A sentences file in hassil's YAML shape, as Home Assistant's custom sentences write it:

    intents:
      SetThermostat:
        data:
          - sentences: ["set [the] {room} thermostat to <temp>"]
          - sentences: ["make it cosy [in the] {room}"]
            slots: {temperature: 22}  # given without being said
        reply: "Setting the {room} thermostat to {temperature} degrees"
    lists:
      room: {values: [office, {in: study, out: office}]}
      temperature: {range: {from: 10, to: 30}}
    expansion_rules:
      temp: "{temperature} [degrees]"
    skip_words: [pretty please]

    Expansion rules (the file's, and a data block's own) are written into the templates that use them, so
    the grammar that reaches matching and listening holds templates and lists only."""
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8-sig")) or {}
    except FileNotFoundError:
        raise GrammarError(f"{p}: no such sentences file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise GrammarError(f"{p}: not a valid YAML sentences file: {e}") from None
    if not isinstance(raw, dict) or set(raw) - TOP_KEYS:
        unknown = sorted(set(raw) - TOP_KEYS) if isinstance(raw, dict) else []
        raise GrammarError(f"{p}: expected the keys 'intents' and 'lists' at the top level"
                           + (f" (and perhaps {', '.join(sorted(TOP_KEYS - {'intents', 'lists'}))}), not "
                              f"{unknown[0]!r}" if unknown else ""))
    rules = _rules(raw.get("expansion_rules"), f"{p}: 'expansion_rules'")
    g = Grammar(skip_words=_words(raw.get("skip_words"), f"{p}: 'skip_words'"))
    for name, body in (raw.get("intents") or {}).items():
        key = f"{p}: 'intents.{name}"  # closed with the rest of the key it names
        where = key + "'"
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise GrammarError(f"{where}: expected a table with a 'data' list")
        sentences: list[str] = []
        gives: dict[str, dict[str, str]] = {}
        for j, d in enumerate(body["data"]):
            at = f"{key}.data[{j}]"
            s = d.get("sentences") if isinstance(d, dict) else None
            if not isinstance(s, list) or not all(isinstance(x, str) for x in s):
                raise GrammarError(f"{at}.sentences': expected a list of strings")
            for unsupported, why in UNSUPPORTED_DATA.items():
                if unsupported in d:
                    raise GrammarError(f"{at}.{unsupported}': {why}")
            own = {**rules, **_rules(d.get("expansion_rules"), f"{at}.expansion_rules'")}
            given = _given(d.get("slots"), f"{at}.slots'")
            for x in s:
                sentence = _inline(x, own, f"{at}.sentences'")
                if gives.get(sentence, given) != given:
                    raise GrammarError(f"{at}.sentences': {x!r} is in two data blocks that give different slots")
                if given:
                    gives[sentence] = given
                sentences.append(sentence)
        reply = body.get("reply", "")
        if not isinstance(reply, str):
            raise GrammarError(f"{key}.reply': expected a string")
        g.intents[str(name)] = CustomIntent(str(name), sentences, reply, gives)
    for name, body in (raw.get("lists") or {}).items():
        where = f"{p}: 'lists.{name}'"
        if isinstance(body, dict) and body.get("wildcard"):
            raise GrammarError(f"{where}: wildcard lists (any words at all) are not supported: the box acts only "
                               "on values it can list and hear, so give the list its values")
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


TOP_KEYS = {"language", "intents", "lists", "version", "expansion_rules", "skip_words"}
# Parts of hassil's shape that need Home Assistant around them, refused with the reason rather than ignored:
# ignoring them would act on sentences Home Assistant would have passed over.
UNSUPPORTED_DATA = {
    "requires_context": "context (the area or device a request comes from in Home Assistant) is not supported",
    "excludes_context": "context (the area or device a request comes from in Home Assistant) is not supported",
}
RULE = re.compile(r"<([^<>{}]+)>")
MAX_TEMPLATE = 100_000  # characters of one template with its rules written in: rules that double at each level stop


def _rules(raw, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise GrammarError(f"{where}: expected rule names, each with a template (a string)")
    return {str(k).strip(): v for k, v in raw.items()}


def _given(raw, where: str) -> dict[str, str]:
    """A data block's `slots`: values its sentences give without saying them ("make it romantic": color red)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                            for v in raw.values()):
        raise GrammarError(f"{where}: expected slot names, each with a value (a word or a number)")
    if bad := [k for k in raw if not isinstance(k, str) or not NAME_RE.match(k)]:
        raise GrammarError(f"{where}: a slot name should be letters, digits and _, not {bad[0]!r}")
    return {k: str(v) for k, v in raw.items()}


def _words(raw, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(w, str) and w.strip() for w in raw):
        raise GrammarError(f"{where}: expected a list of words or phrases")
    return [w.strip().lower() for w in raw]


def _inline(template: str, rules: dict[str, str], where: str, using: tuple[str, ...] = ()) -> str:
    """`template` with each `<rule>` replaced by its own template, in brackets (as hassil reads it)."""
    size = len(template)

    def one(m: re.Match) -> str:
        nonlocal size
        name = m[1].strip()
        if name not in rules:
            raise GrammarError(f"{where}: the rule <{name}> is not in 'expansion_rules'")
        if name in using:
            raise GrammarError(f"{where}: the rule <{name}> uses itself ({' -> '.join([*using, name])})")
        written = "(" + _inline(rules[name], rules, where, (*using, name)) + ")"
        size += len(written)
        if size > MAX_TEMPLATE:
            raise GrammarError(f"{where}: with its rules written in, a template is over {MAX_TEMPLATE:,} characters")
        return written

    return RULE.sub(one, template)


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

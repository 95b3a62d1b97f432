"""Rhasspy's sentences.ini as custom intents, for homes moving over from Rhasspy.

    [ChangeLightState]
    light_name = ((living room lamp | garage light) {name}) | <ChangeLightColor.light_name>
    turn (on | off){state} [the] <light_name>

Sections are intents; `rule = ...` lines are rules used as `<rule>` or `<Intent.rule>`; every other line is
a sentence. `(a | b)`, `[optional]`, `word:substitute` and number ranges `1..10` are Rhasspy's; a `{tag}`
after a word or group makes a slot, `{tag:value}` with a fixed value; `$name` is a slot list, taken from
the config's `[[slot]]` tables (`values` and `synonyms`, or `range`).

hassil can only fill a slot from a list, so each tagged group becomes a slot list of its own (what can be
said there, and the value it stands for) named `<Intent>_<tag>`, and the sentence refers to it as
`{<Intent>_<tag>:<tag>}`. Rules are written out where they are used; the rest maps onto hassil's syntax.
"""

from __future__ import annotations

import configparser
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from .grammar import CustomIntent, Grammar, GrammarError, SlotList, SlotValue, check

TOKEN = re.compile(r"\s*(?:([()\[\]|<>{}$:])|([^\s()\[\]|<>{}$:]+))")
WORD = re.compile(r"^[^()\[\]|<>{}$:]+$")
RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:,(\d+))?$")
RULE = re.compile(r"^\s*(\w+)\s*=(.*)$")
MAX_VALUES = 5000  # a tagged group that says more than this is better as a [[slot]] list


# -- the template as a tree ---------------------------------------------------------------------------


@dataclass
class Word:
    said: str
    out: str | None = None  # `said:out`; "" says it and leaves it out of the value


@dataclass
class Seq:
    items: list


@dataclass
class Alt:
    options: list  # an empty Seq among them: the whole is optional


@dataclass
class Ref:
    rule: str  # "rule" or "Intent.rule"


@dataclass
class ListRef:
    name: str


@dataclass
class Range:
    lo: int
    hi: int
    step: int


@dataclass
class Tagged:
    body: object
    tag: str
    value: str | None = None  # `{tag:value}`


class _Parser:
    def __init__(self, text: str, where: str):
        self.where = where
        self.tokens = []  # (token, whether a space came before it)
        pos, text = 0, text.strip()
        while pos < len(text):
            m = TOKEN.match(text, pos)
            if not m:
                raise GrammarError(f"{where}: cannot read {text[pos:]!r}")
            self.tokens.append((m[1] or m[2], m.start(1 if m[1] else 2) > pos))
            pos = m.end()
        self.i = 0

    def parse(self):
        node = self._alt()
        if self.i < len(self.tokens):
            raise GrammarError(f"{self.where}: unexpected {self._peek()!r}")
        return node

    def _peek(self):
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def _touching(self) -> bool:
        """The next token follows the last with no space: `word:out`, not `word: out`."""
        return self.i < len(self.tokens) and not self.tokens[self.i][1]

    def _take(self, expected: str | None = None) -> str:
        t = self._peek()
        if t is None or (expected and t != expected):
            raise GrammarError(f"{self.where}: expected {expected or 'more'}, got {t or 'the end of the line'!r}")
        self.i += 1
        return t

    def _alt(self):
        options = [self._seq()]
        while self._peek() == "|":
            self._take()
            options.append(self._seq())
        return options[0] if len(options) == 1 else Alt(options)

    def _seq(self):
        items = []
        while self._peek() not in (None, "|", ")", "]"):
            items.append(self._item())
        return items[0] if len(items) == 1 else Seq(items)

    def _item(self):
        t = self._take()
        if t == "(":
            node = self._alt()
            self._take(")")
        elif t == "[":
            node = Alt([self._alt(), Seq([])])
            self._take("]")
        elif t == "<":
            node = Ref(self._word("a rule name"))
            self._take(">")
        elif t == "$":
            node = ListRef(self._word("a slot list name"))
        elif t in "|)]>{}:":
            raise GrammarError(f"{self.where}: unexpected {t!r}")
        elif m := RANGE.match(t):
            node = Range(int(m[1]), int(m[2]), int(m[3] or 1))
        else:
            node = Word(t)
        if self._peek() == ":":  # substitution: `word:out`, `(a | b):out`, `word:` (said, left out)
            self._take()
            out = self._take() if self._touching() and WORD.match(self._peek()) else ""
            node = Word(node.said, out) if isinstance(node, Word) else Tagged(node, "", out)
        if self._peek() == "{":
            self._take()
            tag, value = self._word("a tag name"), None
            if self._peek() == ":":
                self._take()
                value = self._word("a tag value")
            self._take("}")
            node = Tagged(node, tag.split("!")[0], value)  # `!converter` is Rhasspy's; values stay text
        return node

    def _word(self, what: str) -> str:
        t = self._take()
        if not WORD.match(t):
            raise GrammarError(f"{self.where}: expected {what}, got {t!r}")
        return t


# -- the tree as hassil templates and slot lists --------------------------------------------------------


class _Converter:
    """`intent` names the slot lists made; `owner` is the intent whose rules a bare `<rule>` means (the
    intent of the rule being written out, for `<Other.rule>`)."""

    def __init__(self, rules: dict[str, object], lists: dict[str, SlotList]):
        self.rules, self.lists = rules, lists
        self.new_lists: dict[str, SlotList] = {}

    def template(self, node, intent: str, owner: str, where: str, seen=()) -> str:
        """hassil's syntax for a node; tagged groups become slot lists of this intent."""
        if isinstance(node, Word):
            return node.said
        if isinstance(node, Seq):
            return " ".join(t for n in node.items if (t := self.template(n, intent, owner, where, seen)))
        if isinstance(node, Alt):
            parts = [self.template(n, intent, owner, where, seen) for n in node.options]
            said = [p for p in parts if p]
            body = "(" + " | ".join(said) + ")" if len(said) > 1 else (said[0] if said else "")
            return f"[{body}]" if len(said) < len(parts) and body else body
        if isinstance(node, Ref):
            full, rule = self._rule(node.rule, owner, where, seen)
            return self.template(rule, intent, full.split(".")[0], where, (*seen, full))
        if isinstance(node, ListRef):
            return "(" + " | ".join(v.said for v in self._list(node.name, where).values) + ")"
        if isinstance(node, Range):
            raise GrammarError(f"{where}: the number range {node.lo}..{node.hi} needs a {{tag}} to be a slot")
        if isinstance(node, Tagged):
            if not node.tag:  # `(a | b):out` outside a slot: only what is said matters here
                return self.template(node.body, intent, owner, where, seen)
            return "{" + self._slot(node, intent, owner, where, seen) + ":" + node.tag + "}"
        raise AssertionError(node)

    def _slot(self, node: Tagged, intent: str, owner: str, where: str, seen) -> str:
        body = node.body
        while isinstance(body, Ref):  # `<rule>{tag}`
            full, body = self._rule(body.rule, owner, where, seen)
            owner, seen = full.split(".")[0], (*seen, full)
        if isinstance(body, ListRef) and node.value is None:
            self._list(body.name, where)
            return body.name  # the config's own list, used as it is
        if isinstance(body, Range):
            sl = SlotList(range=(body.lo, body.hi, body.step))
        else:
            pairs = list(dict.fromkeys(itertools.islice(self._expand(body, owner, where, seen), MAX_VALUES + 1)))
            if len(pairs) > MAX_VALUES:
                raise GrammarError(f"{where}: the slot {{{node.tag}}} can be said in more than {MAX_VALUES} ways")
            sl = SlotList([SlotValue(said, node.value if node.value is not None else (None if out == said else out))
                           for said, out in pairs if said])
        base = name = f"{intent}_{node.tag}"
        for n in itertools.count(2):  # the same tag used twice in one intent with different words
            if name not in self.new_lists or self.new_lists[name] == sl:
                break
            name = f"{base}_{n}"
        self.new_lists[name] = sl
        return name

    def _expand(self, node, owner: str, where: str, seen):
        """Every (said, value) a node can produce."""
        if isinstance(node, Word):
            yield node.said, node.said if node.out is None else node.out
        elif isinstance(node, Seq):
            for combo in itertools.product(*(list(self._expand(n, owner, where, seen)) for n in node.items)):
                yield _join(s for s, _ in combo), _join(o for _, o in combo)
        elif isinstance(node, Alt):
            for n in node.options:
                yield from self._expand(n, owner, where, seen)
        elif isinstance(node, Ref):
            full, rule = self._rule(node.rule, owner, where, seen)
            yield from self._expand(rule, full.split(".")[0], where, (*seen, full))
        elif isinstance(node, ListRef):
            sl = self._list(node.name, where)
            if sl.range:
                lo, hi, step = sl.range
                sl = SlotList([SlotValue(str(n)) for n in range(lo, hi + 1, step)])
            for v in sl.values:
                yield v.said, v.value if v.value is not None else v.said
        elif isinstance(node, Range):
            for n in range(node.lo, node.hi + 1, node.step):
                yield str(n), str(n)
        elif isinstance(node, Tagged):  # a tag inside a slot: its words count, its own tag does not
            for said, out in self._expand(node.body, owner, where, seen):
                yield said, node.value if node.value is not None else out

    def _rule(self, name: str, owner: str, where: str, seen) -> tuple[str, object]:
        full = name if "." in name else f"{owner}.{name}"
        if full not in self.rules:
            raise GrammarError(f"{where}: the rule <{name}> is not defined")
        if full in seen:
            raise GrammarError(f"{where}: the rule <{name}> refers to itself")
        return full, self.rules[full]

    def _list(self, name: str, where: str) -> SlotList:
        if name not in self.lists:
            raise GrammarError(f"{where}: the slot list ${name} is not defined (add a [[slot]] named {name!r})")
        return self.lists[name]


def _join(words) -> str:
    return " ".join(w for w in words if w)


# -- the file -------------------------------------------------------------------------------------------


def load(path: str | Path, lists: dict[str, SlotList] | None = None) -> Grammar:
    """The intents of a Rhasspy sentences.ini. `$name` lists are looked up in `lists` (the config's) and
    stay there; the grammar returned holds the intents and the slot lists made from tagged groups."""
    p = Path(path)
    ini = configparser.ConfigParser(allow_no_value=True, delimiters=("=",), comment_prefixes=("#",),
                                    interpolation=None, strict=False)
    ini.optionxform = str  # keep the case of rule names and sentences
    try:
        ini.read_string(p.read_text(encoding="utf-8-sig"), source=str(p))
    except FileNotFoundError:
        raise GrammarError(f"{p}: no such sentences file") from None
    except (configparser.Error, UnicodeDecodeError) as e:
        raise GrammarError(f"{p}: not a valid Rhasspy sentences.ini: {e}") from None
    rules, sentences = {}, {}
    for intent in ini.sections():
        sentences[intent] = []
        for key, value in ini.items(intent):
            where = f"{p}: '{intent}'"
            line = key if value is None else f"{key} = {value}"
            if value is not None and (m := RULE.match(line)) and m[1] == key.strip():
                rules[f"{intent}.{m[1]}"] = _Parser(m[2], f"{where}, rule {m[1]}").parse()
            else:
                sentences[intent].append((line, _Parser(line, f"{where}, {line!r}").parse()))
    conv = _Converter(rules, lists or {})
    g = Grammar()
    for intent, lines in sentences.items():
        g.intents[intent] = CustomIntent(intent, [conv.template(node, intent, intent, f"{p}: '{intent}', {line!r}")
                                                  for line, node in lines])
    g.lists = conv.new_lists
    check(Grammar(g.intents, {**(lists or {}), **g.lists}), str(p))
    return g

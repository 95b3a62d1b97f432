"""The user's own grammar as one word graph, searched for the paths nearest to what was heard.

A grammar of a few templates over slot lists says thousands or millions of sentences ("[can I get] [a]
[{size}] [{roast}] [{shots}] {drink} [with {milk}] [and {sugar}]"): too many to list and compare one by
one. Compiled once into a graph whose arcs are words, slot lists and nothing (hassil's own FST, its
placeholders standing for the lists), it is searched with an edit distance in time that grows with the
graph and the transcript, not with the number of sentences:

- a heard word on a grammar word costs how unlike they are (letters and a sound-alike spelling), a grammar
  word not heard costs one, a heard word the grammar has no place for costs one (a filler word little);
- a slot list is one arc, crossed by the heard words nearest to one of its values.

The best path of each template is a reading of what was said, with its intent and slot values taken from
the path, not from re-parsing text; the close listening (rescore.py) weighs them, and their one-slot
variants, on the audio.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from hassil import (
    Group,
    Intents,
    ListReference,
    Permutation,
    RangeSlotList,
    RuleReference,
    TextChunk,
    TextSlotList,
)
from hassil.fst import EPS, intents_to_fst
from hassil.intents import Intent as HassilIntent
from hassil.sample import sample_expression
from rapidfuzz import fuzz

from .fuzzy import sound_key, words

SKIP = "<skip>"
MISSED = 1.0  # a grammar word that was not heard
EXTRA = 1.0  # a heard word the grammar has no place for
FILLER_EXTRA = 0.3  # ... when it is a word people put around commands ("please", "um")
JOINED = 3  # heard words compared with a slot value as one string, spaces left out
JOINED_LIKENESS = 0.6  # ... when at least this alike
MAX_GRAPH = 200_000  # arcs; the 80-template coffee grammar of 69 million sentences has about 6,000
BEAM = 6.0  # edit cost behind the best path at the same heard word that ends a path's search
UNLIKE_WORD = 0.5  # a word of a sentence without slots, said by no reading and less like what was heard, is doubted
UNLIKE_VALUE = 0.2  # a value said by no reading, this much less like the heard words than another, is doubted
VARIANT_SPREAD = 0.35  # values this much less like the heard words than the path's own are not tried
ALSO_VALUES = 2  # values of a slot taken from other readings' paths and tried in a path (see variants)
VALUES_PER_SLOT = 40  # sayings of one slot value kept (a value that is itself a template)
FRAGMENT = 3  # a reading of fewer words (filler aside) is no order, however near one: see `fragment`
ECHO = 0.7  # a heard word this like one of a path's (letters or sound) is a witness that the path was said
SMALL_WORDS = {"the", "a", "an", "to", "in", "of", "my", "with", "and", "for", "me", "i", "some"}

UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def tokens(text: str) -> list[str]:
    """The words of a text as the graph has them: lower case, no punctuation ("what's" is "whats"),
    numbers said in words as digits ("twenty five" -> "25"), "40%" as "40 percent"."""
    out: list[str] = []
    tens = False  # the word before was a tens word ("twenty"), which a unit may complete
    for w in words(text.replace("'", "")):
        if w in UNITS and tens and 0 < UNITS.index(w) < 10:
            out[-1] = str(int(out[-1]) + UNITS.index(w))
            tens = False
            continue
        tens = w in TENS
        out.append(str(UNITS.index(w)) if w in UNITS else str(20 + 10 * TENS.index(w)) if tens else w)
    return out


def matched(words: list[str], said: list[str]) -> dict[int, list[int]]:
    """Each of a sentence's words -> the heard words that stand in its place, by the least edits that turn
    the one into the other (costed as `GrammarGraph.nearest` costs them)."""
    n, m = len(words), len(said)
    cost = [[i * MISSED + j * EXTRA if not i * j else 0.0 for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + MISSED, cost[i][j - 1] + EXTRA,
                             cost[i - 1][j - 1] + 1.0 - similarity(said[j - 1], words[i - 1]))
    at: dict[int, list[int]] = defaultdict(list)
    i, j = n, m
    while i and j:
        if cost[i][j] == cost[i - 1][j - 1] + 1.0 - similarity(said[j - 1], words[i - 1]):
            at[i - 1].append(j - 1)
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + MISSED:
            i -= 1
        else:
            at[i].append(j - 1)  # a heard word the sentence has no place for: with its next word
            j -= 1
    return at


def similarity(heard: str, word: str) -> float:
    """0..1, how alike a heard word and a grammar word are, by letters and by sound."""
    if heard == word:
        return 1.0
    if heard.isdigit() or word.isdigit():
        return 0.0  # a different number is a different value, however alike its digits
    return max(fuzz.ratio(heard, word), fuzz.ratio(sound_key(heard), sound_key(word))) / 100


@functools.lru_cache(maxsize=4096)
def _joined_sound(text: str) -> str:
    return sound_key(text).replace(" ", "")


def value_likeness(heard: str, value: str) -> float:
    """0..1, how alike heard words and a slot value are as a whole, spaces left out ("floor taco" and
    "cortado"), by letters and by sound."""
    return max(fuzz.ratio(heard.replace(" ", ""), value.replace(" ", "")),
               fuzz.ratio(_joined_sound(heard), _joined_sound(value))) / 100


@dataclass(frozen=True)
class SlotArc:
    slot: str  # the slot's name in the intent
    values: tuple[tuple[tuple[str, ...], object, str], ...]  # (words said, value meant, text said)
    key: str = ""  # its name in the graph (the slot's, or the slot's and its list's: see _lists_apart)

    @functools.cached_property
    def numbers(self) -> dict[str, int]:
        """Its values that are a number: the number's digits -> its place in `values`."""
        return {said[0]: i for i, (said, _, _) in enumerate(self.values) if len(said) == 1 and said[0].isdigit()}

    @functools.cached_property
    def words_alone(self) -> set[str]:
        """The values said in one word."""
        return {said[0] for said, _, _ in self.values if len(said) == 1}

    @staticmethod
    def said(sl) -> list[tuple[tuple[str, ...], object, str]]:
        """A hassil slot list's values: the words each is said with, what it means, the text said."""
        values: list[tuple[tuple[str, ...], object, str]] = []
        if isinstance(sl, RangeSlotList):
            values = [((str(n),), n, str(n)) for n in range(sl.start, sl.stop + 1, sl.step)]
        elif isinstance(sl, TextSlotList):
            for v in sl.values:
                out_value = v.value_out
                for said in itertools.islice(sample_expression(v.text_in), VALUES_PER_SLOT):
                    ws = tuple(tokens(said))
                    if ws:
                        said = " ".join(said.lower().split())
                        values.append((ws, out_value if out_value is not None else said, said))
        return values


@dataclass
class Path:
    """A sentence of the grammar, as the search found it."""

    intent: str
    words: list[str]  # the sentence's words (as `tokens` gives them), slot values as said
    spelled: list[str]  # the same words as the grammar writes them ("twelve", not "12")
    slots: dict[str, object]
    cost: float  # edit cost against what was heard
    template: int = 0
    # each slot (its arc's key): its words in `words` (from, to) and its place in `spelled`
    spans: list[tuple[str, int, int, int]] = field(default_factory=list)
    heard: dict[str, str] = field(default_factory=dict)  # each slot's key: the heard words it was matched to

    @property
    def text(self) -> str:
        return " ".join(self.spelled)

    def said_as(self, forms: dict[str, str]) -> str:
        """The sentence written the way the recogniser wrote the same words ("what's" for the grammar's
        "whats", "12" or "twelve"), so that weighing it on the audio does not weigh the spelling; `forms`:
        a word as `tokens` gives it -> as the recogniser wrote it."""
        out, i = [], 0
        for piece in self.spelled:
            n = len(tokens(piece)) or 1
            said = self.words[i:i + n]
            out.append(" ".join(forms[w] for w in said) if said and all(w in forms for w in said) else piece)
            i += n
        return " ".join(out)

    @property
    def meaning(self) -> tuple:
        return ("custom", self.intent, tuple(sorted((k, str(v)) for k, v in self.slots.items())))


GIVEN = "\x1f"  # joins an intent's name and a data block's place in it, in a name only the graph uses


def _given_apart(intents) -> tuple[Intents, dict[str, tuple[str, dict[str, str]]]]:
    """hassil's graph names a path's intent, not the data block it came from. A block whose `slots` give
    values without their being said ("make it romantic": color red) gets an intent name of its own here,
    which `GrammarGraph.meant` reads back as the intent and those values."""
    if not any(d.slots for it in intents.intents.values() for d in it.data):
        return intents, {}
    split: dict[str, HassilIntent] = {}
    given: dict[str, tuple[str, dict[str, str]]] = {}
    for name, it in intents.intents.items():
        if plain := [d for d in it.data if not d.slots]:
            split[name] = HassilIntent(name, plain)
        for i, d in enumerate(it.data):
            if d.slots:
                own = f"{name}{GIVEN}{i}"
                split[own], given[own] = HassilIntent(own, [d]), (name, dict(d.slots))
    return Intents(language=intents.language, intents=split, slot_lists=intents.slot_lists,
                   expansion_rules=intents.expansion_rules, skip_words=intents.skip_words), given


APART = "\u2063"  # joins a slot's name and one of its lists', in a name only the graph uses (not a space:
# hassil splits at those)


def _list_refs(intents):
    """Every list reference of the templates, in the expansion rules they use too (each rule once)."""
    stack = [s.expression for it in intents.intents.values() for d in it.data for s in d.sentences]
    rules: set[str] = set()
    while stack:
        e = stack.pop()
        if isinstance(e, ListReference):
            yield e
        elif isinstance(e, Group):
            stack += e.items
        elif isinstance(e, RuleReference) and e.rule_name not in rules:
            rules.add(e.rule_name)
            if (rule := intents.expansion_rules.get(e.rule_name)) is not None:
                stack.append(rule.expression)


def _lists_apart(intents):
    """hassil's graph names a slot, not the list that fills it: with `{roast}` in one template and
    `{decaf:roast}` in another, each would take both lists' values, and the graph would say sentences
    the grammar does not ("a medium macchiato" read as a roast, "a decaffeinated roast latte"). A slot
    filled from more than one list gets a name per list here; its arcs keep the slot's own name."""
    lists: dict[str, set[str]] = defaultdict(set)
    for ref in _list_refs(intents):
        lists[ref.slot_name].add(ref.list_name)
    if all(len(names) < 2 for names in lists.values()):
        return intents
    intents = copy.deepcopy(intents)
    for ref in _list_refs(intents):
        if len(lists[ref.slot_name]) > 1:
            ref._slot_name = f"{ref.slot_name}{APART}{ref.list_name}"  # (hassil's own field: no setter)
    return intents


class GrammarTooLarge(ValueError):
    """A grammar whose graph would not fit: `(a; b; c; d; e; f; g; h)` alone is 40,320 orders of eight."""


def graph_size(intents) -> int:
    """About how many arcs the grammar's graph would have, reckoned from its templates without building
    it: a permutation of k parts is k! sequences (8 parts: a million states, a gigabyte, 15 s)."""

    def size(e, depth: int = 0) -> int:
        if depth > 50:
            return MAX_GRAPH  # rules within rules past any sensible grammar
        if isinstance(e, Permutation):
            inner = sum(size(i, depth + 1) for i in e.items)
            return math.factorial(len(e.items)) * inner if len(e.items) <= 12 else MAX_GRAPH
        if isinstance(e, Group):
            return 1 + sum(size(i, depth + 1) for i in e.items)
        if isinstance(e, RuleReference):
            rule = intents.expansion_rules.get(e.rule_name)
            return size(rule.expression, depth + 1) if rule is not None else 1
        if isinstance(e, TextChunk):
            return 1 + len(e.text.split())
        return 1

    return sum(size(sentence.expression) for intent in intents.intents.values() for data in intent.data
               for sentence in data.sentences)


class GrammarGraph:
    def __init__(self, intents, filler: list[str] = (), domain: str = "custom"):
        """`intents`: hassil's Intents of a grammar; `filler`: words skipped anywhere; `domain`: whose
        intents they are (the user's "custom", the box's own "assistant"). Raises GrammarTooLarge."""
        if (n := graph_size(intents)) > MAX_GRAPH:
            raise GrammarTooLarge(f"its templates make a graph of about {n:,} arcs, more than {MAX_GRAPH:,} "
                                  "(a permutation (a; b; ...) of many parts multiplies it)")
        intents, self.given = _given_apart(intents)
        intents = _lists_apart(intents)
        self.filler = {w for f in filler for w in f.split()}
        self.domain = domain
        fst = intents_to_fst(intents, slot_lists=intents.slot_lists).remove_spaces()
        self.slots = self._slot_arcs(intents)
        self.arcs: dict[int, list[tuple[int, str | SlotArc | None, str | None]]] = defaultdict(list)
        self.open: set[int] = set()  # states a wildcard leaves from
        self.spelling: dict[str, str] = {}  # a grammar word as `tokens` gives it -> as the grammar writes it
        states = itertools.count(max([fst.start, *fst.final_states, *fst.arcs,
                                      *(a.to_state for arcs in fst.arcs.values() for a in arcs)]) + 1)
        for s, arcs in fst.arcs.items():
            for a in arcs:
                if a.in_label == SKIP:
                    continue  # hassil's "anything here"; a heard word the grammar has no place for costs EXTRA
                labels = self._labels(a.in_label)
                if labels is None:  # a list of no values (a wildcard's): the graph cannot hear it, but
                    self.open.add(s)  # a sentence may go on there
                    continue
                intent = a.out_label[len("intent:"):] if a.out_label.startswith("intent:") else None
                # one arc a heard word: "{minutes}-minute" is a slot, then a word, through a state of its own
                at = s
                for i, label in enumerate(labels):
                    to = a.to_state if i == len(labels) - 1 else next(states)
                    self.arcs[at].append((to, label, intent if i == 0 else None))
                    at = to
        self.final = set(fst.final_states)
        self.start = fst.start
        self.templates = self._templates()
        # One final state per template, so that the search ends with the best path of each.
        first_free = max([*self.arcs, *(t for arcs in self.arcs.values() for t, _, _ in arcs)]) + 1
        self.ends = {tpl: first_free + tpl for tpl in set(self.templates.values())}
        for s, arcs in self.arcs.items():
            self.arcs[s] = [(self.ends[self.templates[s]] if t in self.final and s in self.templates else t, lab, i)
                            for t, lab, i in arcs]
        self.order = self._topological(fst.start)
        self.vocabulary = sorted({lab for arcs in self.arcs.values() for _, lab, _ in arcs if isinstance(lab, str)}
                                 | {w for arc in self.slots.values() for said, _, _ in arc.values for w in said})

    def meant(self, label: str, slots: dict) -> tuple[str, dict]:
        """The intent a path's arcs name, and its slots with those its data block gives without their being
        said."""
        intent, given = self.given.get(label, (label, {}))
        return intent, {**given, **slots}

    def _labels(self, label: str) -> list[str | SlotArc | None] | None:
        """What one arc of hassil's graph says, as arcs of this one: nothing, a word, a slot, or several of
        them where a slot is written against text ("{minutes}-minute", "{volume}%"); None: a slot of no
        values (a wildcard's). Notes how the grammar writes each word (`spelling`)."""
        if label == EPS:
            return [None]
        pieces = [p for p in re.split(r"(\{[^{}]+\})", label) if p]
        out: list[str | SlotArc | None] = []
        for piece in pieces:
            if piece.startswith("{") and piece.endswith("}"):
                if (slot := self.slots.get(piece[1:-1])) is None:
                    return None
                out.append(slot)
                continue
            said = tokens(piece)  # "Twelve" -> "12", as heard words are
            for w in said:
                self.spelling.setdefault(w, piece.lower() if len(pieces) == len(said) == 1 else w)
            out += said
        return out or [None]

    @staticmethod
    def _slot_arcs(intents) -> dict[str, SlotArc]:
        """Each slot of the graph (as `_lists_apart` names them), with the values of its list as words."""
        lists = {ref.slot_name: ref.list_name for ref in _list_refs(intents)}
        out = {}
        for key, list_name in lists.items():
            if values := SlotArc.said(intents.slot_lists.get(list_name)):
                out[key] = SlotArc(key.split(APART)[0], tuple(values), key)
        return out

    def _topological(self, start: int) -> list[int]:
        indegree: dict[int, int] = defaultdict(int)
        states = {start} | set(self.arcs) | {t for arcs in self.arcs.values() for t, _, _ in arcs}
        for arcs in self.arcs.values():
            for t, _, _ in arcs:
                indegree[t] += 1
        ready = [s for s in states if indegree[s] == 0]
        order = []
        while ready:
            s = ready.pop()
            order.append(s)
            for t, _, _ in self.arcs.get(s, ()):
                indegree[t] -= 1
                if indegree[t] == 0:
                    ready.append(t)
        if len(order) != len(states):
            raise ValueError("the grammar's graph has a loop")  # hassil templates never do
        return order

    def _templates(self) -> dict[int, int]:
        """Each state's template (the first state after an intent's start that it is reached from)."""
        of: dict[int, int] = {}
        starts = [t for t, _, intent in self.arcs.get(self.start, ()) if intent]
        firsts = [t for s in starts for t, _, _ in self.arcs.get(s, ())]
        for i, first in enumerate(firsts):
            stack = [first]
            while stack:
                s = stack.pop()
                if s in of or s in self.final:
                    continue
                of[s] = i
                stack += [t for t, _, _ in self.arcs.get(s, ())]
        return of

    # -- search ---------------------------------------------------------------------------------------

    def nearest(self, text: str, k: int = 3) -> list[Path]:
        """The k nearest sentences of different templates, nearest first."""
        heard = tokens(text)
        if not heard:
            return []
        m = len(heard)
        extra = [FILLER_EXTRA if w in self.filler else EXTRA for w in heard]
        unlike = {w: [1.0 - similarity(h, w) for h in heard] for w in self.vocabulary}
        spans = {name: self._span_costs(arc, heard, unlike) for name, arc in self.slots.items()}
        inf = float("inf")
        cost = {s: [inf] * (m + 1) for s in self.order}
        back: dict[int, list] = {s: [None] * (m + 1) for s in self.order}
        cost[self.start][0] = 0.0
        intent_of: dict[int, str] = {}
        best_at = [inf] * (m + 1)  # the least cost of any path so far at each heard word
        for s in self.order:
            row, brow = cost[s], back[s]
            if min(row) == inf:
                continue
            for j in range(m):  # heard words the grammar has no place for, here
                c = row[j] + extra[j]
                if c < row[j + 1]:
                    row[j + 1], brow[j + 1] = c, (s, j, None, None)
            for j in range(m + 1):  # a path far behind the best one at the same point is not followed
                if row[j] > best_at[j] + BEAM:
                    row[j] = inf
                elif row[j] < best_at[j]:
                    best_at[j] = row[j]
            for t, label, intent in self.arcs.get(s, ()):
                if intent:
                    intent_of[t] = intent
                trow, tback = cost[t], back[t]
                if label is None:
                    for j in range(m + 1):
                        if row[j] < trow[j]:
                            trow[j], tback[j] = row[j], (s, j, None, None)
                elif isinstance(label, str):
                    miss = unlike[label]
                    for j in range(m + 1):
                        c = row[j]
                        if c == inf:
                            continue
                        if c + MISSED < trow[j]:
                            trow[j], tback[j] = c + MISSED, (s, j, label, None)
                        if j < m and c + miss[j] < trow[j + 1]:
                            trow[j + 1], tback[j + 1] = c + miss[j], (s, j, label, None)
                else:
                    table = spans[label.key]
                    for j in range(m + 1):
                        c = row[j]
                        if c == inf:
                            continue
                        for e, (sc, value) in table[j].items():
                            if c + sc < trow[e]:
                                trow[e], tback[e] = c + sc, (s, j, label, value)
        ended = sorted((cost[end][m], tpl, end) for tpl, end in self.ends.items()
                       if end in cost and cost[end][m] < inf)  # a template of only wildcards never ends
        out, seen = [], set()
        for c, tpl, end in ended:
            p = self._path(end, m, back, intent_of, c, tpl, heard)
            if p.meaning not in seen:
                seen.add(p.meaning)
                out.append(p)
                if len(out) == k:
                    break
        return out

    def _span_costs(self, arc: SlotArc, heard: list[str], unlike) -> list[dict[int, tuple[float, int]]]:
        """For each start j, the end e of the heard words a slot may cover and the cost of the value
        nearest to heard[j:e] (and which value)."""
        m = len(heard)
        table: list[dict[int, tuple[float, int]]] = [dict() for _ in range(m + 1)]
        numbers = arc.numbers
        if numbers:  # a number is heard as it is, or not at all (a minute's "45" is not "40")
            first = min(numbers.values())
            for j in range(m + 1):
                table[j][j] = (MISSED, first)
                if j < m:
                    table[j][j + 1] = (0.0, numbers[heard[j]]) if heard[j] in numbers else (1.0, first)
        joined = [{e: " ".join(heard[j:e]) for e in range(j + 1, min(m, j + JOINED) + 1)} for j in range(m + 1)]
        said_joined = [text for _, _, text in arc.values]
        as_numbers = set(numbers.values())
        for vi, (said, _, _) in enumerate(arc.values):
            if vi in as_numbers:
                continue
            n = len(said)
            table_costs = [unlike.get(w) or [1.0 - similarity(h, w) for h in heard] for w in said]
            for j in range(m + 1):
                # the value's words against heard[j:e]: a small edit distance, e up to n + 2 words on
                prev = [float(i) * MISSED for i in range(n + 1)]  # no heard words yet
                spans = {j: prev[n]}
                for e in range(j, min(m, j + n + 2)):
                    cur = [prev[0] + EXTRA] + [0.0] * n
                    for i in range(1, n + 1):
                        cur[i] = min(prev[i] + EXTRA, cur[i - 1] + MISSED, prev[i - 1] + table_costs[i - 1][e])
                    prev = cur
                    spans[e + 1] = prev[n]
                for e in range(j + 1, min(m, j + JOINED) + 1):  # split or joined differently: "floor taco"
                    if e - j > 1 and not (arc.words_alone - set(said)).isdisjoint(heard[j:e]):
                        break  # a value heard as it is belongs to no other: "latte without" is not "flat white"
                    like = value_likeness(joined[j][e], said_joined[vi])
                    if like >= JOINED_LIKENESS:
                        c = max(n, e - j) * (1 - like)
                        spans[e] = min(spans.get(e, c), c)
                for e, c in spans.items():
                    if e not in table[j] or c < table[j][e][0]:
                        table[j][e] = (c, vi)
        return table

    def _path(self, last: int, m: int, back, intent_of, cost: float, template: int, said_words: list[str]) -> Path:
        words: list[str] = []
        spelled: list[str] = []
        slots: dict[str, object] = {}
        spans: list[tuple[str, int, int, int]] = []
        s, j, intent = last, m, ""
        steps, ends = [], []  # each step, and where in the heard words it ended
        while True:
            b = back[s][j]
            if b is None:
                break
            steps.append(b)
            ends.insert(0, j)
            if s in intent_of:
                intent = intent_of[s]
            s, j = b[0], b[1]
        heard: dict[str, str] = {}
        for (s, j, label, value), e in zip(reversed(steps), ends):
            if isinstance(label, SlotArc):
                heard[label.key] = " ".join(said_words[j:e])
            if isinstance(label, str):
                words.append(label)
                spelled.append(self.spelling.get(label, label))
            elif isinstance(label, SlotArc):
                said, meant, text = label.values[value]
                spans.append((label.key, len(words), len(words) + len(said), len(spelled)))
                words += list(said)
                spelled.append(text)
                slots[label.slot] = meant
        intent, slots = self.meant(intent, slots)
        return Path(intent, words, spelled, slots, round(cost, 3), template, spans, heard)

    def variants(self, path: Path, per_slot: int = 6, every_slot: bool = False, also: list[dict] = ()) -> list[Path]:
        """The same sentence with one slot's value changed: the values nearest to the words heard there
        first (a misheard value is the commonest miss: "no cut" for "mocha"), `per_slot` of each, none
        far less like them than the path's own value; none where the value was heard word for word (the
        nearest paths of the other readings cover those). `every_slot`: a path read from the audio itself
        (steered.py), whose every value is the decoder's choice: each slot's values most like its own.
        `also`: the slots of other readings' paths, nearest first; the first `ALSO_VALUES` other values each
        gives a slot are tried too (the decoder wrote "hot chocolate" where the text search found "cortado",
        and "oat milk" where it found "coconut": the audio judges each choice on its own)."""
        out = []
        for key, a, b, at in path.spans:
            arc = self.slots[key]
            heard = path.spelled[at] if every_slot else path.heard.get(key, "")
            exact = tokens(heard) == path.words[a:b]
            if exact and not every_slot:
                continue
            floor = -1.0 if every_slot else value_likeness(heard, path.spelled[at]) - VARIANT_SPREAD
            likeness = {v[2]: value_likeness(heard, v[2]) for v in arc.values}
            own = str(path.slots[arc.slot])
            others = sorted((v for v in arc.values if str(v[1]) != own and likeness[v[2]] >= floor),
                            key=lambda v: -likeness[v[2]])[:per_slot]
            tried = {str(v[1]) for v in others} | {own}
            found = [str(slots[arc.slot]) for slots in also if arc.slot in slots]
            for value in [v for v in dict.fromkeys(found) if v not in tried][:ALSO_VALUES]:
                others += [v for v in arc.values if str(v[1]) == value][:1]  # (another list's value: none)
            for ws, meant, text in others:
                shift = len(ws) - (b - a)
                spans = [(n, x + shift * (x > a), y + shift * (y > a), z) for n, x, y, z in path.spans]
                out.append(Path(path.intent, path.words[:a] + list(ws) + path.words[b:],
                                path.spelled[:at] + [text] + path.spelled[at + 1:], {**path.slots, arc.slot: meant},
                                path.cost, path.template, spans, path.heard))
        return out

    # -- what a path may be taken for ------------------------------------------------------------------

    def doubtful(self, path: Path, readings: list[list[str]]) -> bool:
        """A slot value that no reading says (`readings`: each one's words, as `tokens` gives them) and
        whose letters are far less like the words heard in its place than a value meaning something else:
        the audio and the letters disagree ("latte" for a heard "klotago", whose letters are a cortado's).
        A meaning is judged by its likest saying: "a" heard as "the" is no doubt about one pizza when "one"
        says the same."""
        for key, a, b, at in path.spans:
            value = path.words[a:b]
            if any(r[i:i + len(value)] == value for r in readings for i in range(len(r))):
                continue
            # letters, not sound: a sound-alike spelling keeps too few of a short word's letters
            heard = path.heard.get(key, "").replace(" ", "")
            arc, like = self.slots[key], {}
            for _, meant, text in arc.values:  # each meaning at its likest saying
                ratio = fuzz.ratio(heard, text.replace(" ", "")) / 100
                like[str(meant)] = max(like.get(str(meant), 0.0), ratio)
            if max(like.values()) - like[str(path.slots[arc.slot])] > UNLIKE_VALUE:
                return True
        if path.spans or not readings:
            return False
        # A sentence without slots means what its words say: one that no reading says, and that is unlike
        # the words heard in its place, is the grammar's guess ("tell me the time" for "Tell me a joke.").
        at = matched(path.words, readings[0])
        for i, w in enumerate(path.words):
            if w in SMALL_WORDS or w in self.filler or any(w in r for r in readings):
                continue
            if value_likeness(" ".join(readings[0][k] for k in at.get(i, ())), w) < UNLIKE_WORD:
                return True
        return False

    def leaves_out(self, sentence: str, slots, readings: list[list[str]]) -> bool:
        """A value of a slot the sentence leaves empty (`slots`: those its meaning fills) was heard, said in
        full and clearly (`readings`: each one's words; clearly: by the top one and by at least half of them),
        and its words are not the sentence's: the sentence means less than was said. "Can I get a large latte
        with oat milk and two sugars?" searched into "can I get a large latte with oat milk" drops the sugars
        (the grammar holds sugar only with a roast). A value heard in place of another one of the same slot
        is left to the audio ("oak milk" as almond); one whose words serve another slot is no value left
        out ("a medium latte": the size, not a roast), nor one like a word of the sentence that no reading
        says (it may stand for it: "chai light" for "chai latte"), nor a word of a longer value ("flat
        white")."""
        if not readings:
            return False
        meant = set(tokens(sentence))
        longest = max((len(said) for arc in self.slots.values() for said, _, _ in arc.values), default=0)

        def runs(r):
            return {tuple(r[i:i + n]) for n in range(1, longest + 1) for i in range(len(r) - n + 1)}
        top, others = runs(readings[0]), [runs(r) for r in readings]
        clear = {x for x in top if 2 * sum(x in o for o in others) >= len(readings)}
        unheard = [m for m in meant if not any(m in r for r in readings)]

        def stands_for_unheard(said):  # "chai light" read for "chai latte": "light" is no roast
            return any(similarity(w, m) >= ECHO for w in said for m in unheard)
        return any(said in clear and not set(said) <= meant and not stands_for_unheard(said)
                   for arc in self.slots.values() if arc.slot not in slots for said, _, _ in arc.values)

    def aligned(self, path: Path, heard: str) -> Path:
        """The path with the heard words that stand in each slot's place (`Path.heard`), by the least edits
        that turn its words into the heard ones: for a path read from the audio (steered.py), which no heard
        words were matched to, so that `doubtful` can judge its values."""
        said = tokens(heard)
        at = matched(path.words, said)
        heard_at = {key: " ".join(said[k] for k in sorted(x for w in range(a, b) for x in at.get(w, ())))
                    for key, a, b, _ in path.spans}
        return dataclasses.replace(path, heard=heard_at)

    def heard_enough(self, path: Path, heard: str) -> bool:
        """A fragment is no command: a short sentence of the grammar ("latte", "a latte") is taken only
        when it was heard word for word, and a longer one only if what was heard is at least half as long
        or has one of its words besides the slot values and small words ("soy milk" is not "a latte with
        soy milk", "office" is not "coffee")."""
        said = [w for w in tokens(heard) if w not in self.filler]
        if len(path.words) <= 2:
            return said == path.words
        if 2 * len(said) >= len(path.words):
            return True
        in_slots = {i for _, a, b, _ in path.spans for i in range(a, b)}
        literal = {w for i, w in enumerate(path.words) if i not in in_slots} - SMALL_WORDS
        return bool(literal & set(said))

    def echoes(self, path: Path, heard: str) -> bool:
        """What was heard has one of the path's words that say something (not a small word or a filler),
        as it is or nearly (letters or sound: "latte" in "Another close latte with no shoulder."): for a
        path the grammar imposed on the audio (steered.py), the one witness that it was said at all.
        "I took what?" for a "hot chocolate" said alone echoes nothing of "a large hot chocolate"."""
        said = [w for w in tokens(heard) if w not in SMALL_WORDS and w not in self.filler]
        meant = {w for w in path.words if w not in SMALL_WORDS and w not in self.filler}
        return any(similarity(h, w) >= ECHO for h in said for w in meant)

    def fragment(self, heard: str) -> bool:
        """A word or two heard, filler aside ("drip coffee", "hot chocolate please"): it is never steered,
        and stands only for sentences that say its words as they are (`says_only`; "drip coffee." was once
        searched into "a dark coffee" and acted on)."""
        return len([w for w in tokens(heard) if w not in self.filler]) < FRAGMENT

    def says_only(self, path: Path, heard: str) -> bool:
        """The path's words that say something are what was heard, as they are and in order: it adds small
        words and filler at most ("large latte please" as "a large latte please")."""
        def meaningful(ws):
            return [w for w in ws if w not in SMALL_WORDS and w not in self.filler]
        return meaningful(path.words) == meaningful(tokens(heard))

    def says_all(self, text: str) -> bool:
        """The text is a sentence of the grammar as it is, and whatever may follow it changes nothing it
        means: only words of the same sentence, no slot, no wildcard ("what time is it" may go on with
        "right now"; "set a timer for five minutes" with "and thirty seconds"). A pause after it is not
        one in the middle of a command."""
        here = self._after(text)
        finished = {tpl for tpl, end in self.ends.items() if end in here}
        if not finished:
            return False
        seen, stack = set(here), list(here)
        while stack:
            s = stack.pop()
            if s in self.open:
                return False
            for t, label, _ in self.arcs.get(s, ()):
                if label is not None and (isinstance(label, SlotArc) or self.templates.get(s) not in finished):
                    return False
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return True

    def _after(self, text: str) -> set[int]:
        """The states the grammar is in after these words (none: it holds no sentence that begins so)."""
        # (state, the words still to come of a slot value said in several: "bedroom light")
        here: set[tuple[int, tuple[str, ...]]] = {(s, ()) for s in self._closure({self.start})}
        for w in tokens(text):
            nxt: set[tuple[int, tuple[str, ...]]] = set()
            for s, rest in here:
                if rest:
                    if rest[0] == w:
                        nxt.add((s, rest[1:]))
                    continue
                for t, label, _ in self.arcs.get(s, ()):
                    if label == w:
                        nxt.add((t, ()))
                    elif isinstance(label, SlotArc):
                        nxt |= {(t, said[1:]) for said, _, _ in label.values if said and said[0] == w}
            here = {(c, ()) for s, rest in nxt if not rest for c in self._closure({s})} | {x for x in nxt if x[1]}
            if not here:
                break
        return {s for s, rest in here if not rest}

    def _closure(self, states: set[int]) -> set[int]:
        out, stack = set(states), list(states)
        while stack:
            for t, label, _ in self.arcs.get(stack.pop(), ()):
                if label is None and t not in out:
                    out.add(t)
                    stack.append(t)
        return out

    def sentence_count(self) -> int:
        """How many sentences the grammar says (each slot value counted once per way it is said)."""
        ways = {self.start: 1}
        for s in self.order:
            n = ways.get(s, 0)
            if not n:
                continue
            for t, label, _ in self.arcs.get(s, ()):
                ways[t] = ways.get(t, 0) + n * (len(label.values) if isinstance(label, SlotArc) else 1)
        return sum(ways.get(e, 0) for e in self.ends.values())

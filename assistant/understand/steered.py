"""Reading the audio as the grammar allows: Whisper's decoder steered, token by token, through the user's
grammar graph (paths.py), so that what it reads is a sentence of the grammar whatever the free reading made
of the audio ("a dark roast latte with no sugar", where the free reading was "Another close latte with no
shoulder.").

A beam of token histories: each history carries the places of the grammar it may be in (a state, and what
is left to say of the word or slot value under way, in one of the ways Whisper writes it: "twelve",
"Twelve", "12"); the next token is chosen only among those one of its places allows. Slot values are
taken from the path the history followed, not from re-reading its text. At each word's end a comma may
follow, at the sentence's end a full stop or question mark, as Whisper writes them.

It always finds some sentence of the grammar, said or not: what it finds is a candidate, weighed on the
audio like the others (rescore.weigh), where speech that is no command fits far worse than its free
reading and is left alone.
"""

from __future__ import annotations

import heapq
import weakref
from collections import defaultdict
from dataclasses import dataclass

from .paths import Path, SlotArc

BEAM = 4  # token histories kept at each step
BEST = 3  # sentences of different meaning returned (and the best that begins another way: see steered)
GIVE_UP = 1.0  # the beam's best this much behind (nats per token) the best finished sentence: it is done


@dataclass(frozen=True)
class Place:
    """Where in the grammar a history may be: at `state`, with `pending` tokens still to come of the word
    (or value) under way, and the steps taken: each a grammar word, or a slot and the value chosen."""

    state: int
    pending: tuple[int, ...]
    steps: tuple  # ("word", word) or ("slot", SlotArc, value index)
    intent: str | None
    ending: bool = False  # only the end of text may follow (after the closing full stop)
    comma: bool = False  # the pending token is a comma after a word


class Steering:
    """A grammar graph's word arcs as Whisper's tokens, worked out once per state and remembered."""

    def __init__(self, graph, encode):
        """`encode`: text -> Whisper's token ids, a leading space meaning a word of its own."""
        self.graph = graph
        self.encode = encode
        self.comma = tuple(encode(","))
        self.closing = [tuple(encode(p)) for p in (".", "?")]
        self.end_states = set(graph.ends.values())
        self._moves: dict[int, tuple[list, bool]] = {}
        self._written: dict[str, list[tuple[int, ...]]] = {}

    def written(self, words: tuple[str, ...], text: str) -> list[tuple[int, ...]]:
        """The ways Whisper may write a word or a value ("twelve ounce", "Twelve ounce", "12 ounce"), as
        token ids."""
        key = text + "|" + " ".join(words)
        if key not in self._written:
            forms = {text, " ".join(words)}
            forms |= {f[:1].upper() + f[1:] for f in forms}
            forms |= {f.replace("i'", "I'") for f in forms if f.startswith("i'")} | {"I" for f in forms if f == "i"}
            self._written[key] = sorted({tuple(self.encode(" " + f)) for f in forms if f})
        return self._written[key]

    def moves(self, state: int) -> tuple[list, bool]:
        """The arcs that say something from `state` (through arcs that say nothing): (label, to, intent),
        and whether a sentence may end here."""
        if state not in self._moves:
            arcs = self.graph.arcs
            out, ends, seen = [], False, set()
            stack = [(state, None)]
            while stack:
                s, intent = stack.pop()
                if s in seen:
                    continue
                seen.add(s)
                ends |= s in self.end_states
                for to, label, arc_intent in arcs.get(s, ()):
                    if label is None:
                        stack.append((to, arc_intent or intent))
                    else:
                        out.append((label, to, arc_intent or intent))
            self._moves[state] = (out, ends)
        return self._moves[state]

    def after(self, place: Place) -> list[Place]:
        """The places a history may be in once a word is said: each next word or value begun (its first
        token pending), a comma, or the sentence's end (a closing mark pending, or nothing: the end of text)."""
        moves, ends = self.moves(place.state)
        out = []
        for label, to, intent in moves:
            intent = intent or place.intent
            if isinstance(label, SlotArc):
                for i, (words, _, text) in enumerate(label.values):
                    out += [Place(to, w, place.steps + (("slot", label, i),), intent)
                            for w in self.written(words, text)]
            else:
                spelled = self.graph.spelling.get(label, label)
                out += [Place(to, w, place.steps + (("word", label),), intent)
                        for w in self.written((label,), spelled)]
        if place.steps and not place.comma:
            out.append(Place(place.state, self.comma, place.steps, place.intent, comma=True))
        if ends and place.steps and not place.comma:  # "I'd like a latte," is not said to its end
            out += [Place(place.state, c, place.steps, place.intent, ending=True) for c in self.closing]
            out.append(Place(place.state, (), place.steps, place.intent, ending=True))
        return out


_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def steering(graph, encode) -> Steering:
    """The graph's Steering, made once for it (the recogniser and its tokens stay the same for the box's life)."""
    if graph not in _compiled:
        _compiled[graph] = Steering(graph, encode)
    return _compiled[graph]


@dataclass
class History:
    tokens: list[int]
    logprob: float  # summed over its tokens
    places: list[Place]


def steered(asr, encoded, steering: Steering, beam: int = BEAM, best: int = BEST) -> list[tuple[Path, str, float]]:
    """The grammar's sentences the audio reads as best, each (path, as the decoder wrote it, average
    log-probability per token, end of text included), best first, at most `best` of different meanings,
    and the best of another meaning that begins with another word than the best (kept in the beam all
    along: one history more, where all the others begin alike)."""
    decoding = asr.steering(encoded)
    eot = decoding.eot
    histories = [History([], 0.0, [p for p in steering.after(Place(steering.graph.start, (), (), None))])]
    finished: list[tuple[float, Place, list[int]]] = []
    folded: dict[int, str] = {}

    def opening(tokens: list[int]) -> str:  # the token a history begins with, whatever its case
        if tokens[0] not in folded:
            folded[tokens[0]] = decoding.text(tokens[:1]).strip().lower()
        return folded[tokens[0]]

    for _ in range(decoding.max_tokens):
        logprobs = decoding.logprobs
        options = []  # (summed log-probability, row, token, places)
        for row, h in enumerate(histories):
            by_token: dict[int, list[Place]] = defaultdict(list)
            for p in h.places:
                if p.pending:
                    by_token[p.pending[0]].append(p)
                elif p.ending:
                    score = (h.logprob + float(logprobs[row, eot])) / (len(h.tokens) + 1)
                    finished.append((score, p, h.tokens))
            for token, places in by_token.items():
                options.append((h.logprob + float(logprobs[row, token]), row, token, places))
        kept = heapq.nlargest(beam, options, key=lambda o: o[0])
        if kept:
            # The beam commits to a sentence's first words, and a garbled start ("I've been tunneled at least.")
            # sends every history down one opening ("I'd like a double latte", where "a big double latte" was
            # said): the best history that begins another way is kept too.
            begins = lambda o: opening(histories[o[1]].tokens or [o[2]])  # noqa: E731
            lead = begins(kept[0])
            if all(begins(o) == lead for o in kept):
                other = max((o for o in options if begins(o) != lead), key=lambda o: o[0], default=None)
                if other is not None:
                    kept.append(other)
        length = len(histories[0].tokens) + 1
        if not kept or finished and kept[0][0] / length < max(f[0] for f in finished) - GIVE_UP:
            break
        before, histories = histories, []
        for score, row, token, places in kept:
            moved = []
            for p in places:
                rest = p.pending[1:]
                if rest:
                    moved.append(Place(p.state, rest, p.steps, p.intent, p.ending, p.comma))
                elif p.ending:
                    moved.append(Place(p.state, (), p.steps, p.intent, ending=True))
                else:
                    moved += steering.after(Place(p.state, (), p.steps, p.intent, comma=p.comma))
            histories.append(History(before[row].tokens + [token], score, moved))
        decoding.advance([row for _, row, _, _ in kept], [token for _, _, token, _ in kept])
    out, seen = [], set()
    ranked = sorted(finished, key=lambda f: -f[0])
    for score, place, tokens in ranked:
        path = _path(place, steering.graph)
        if path.meaning not in seen:
            seen.add(path.meaning)
            out.append((path, decoding.text(tokens), score))
            if len(out) == best:
                break
    if ranked:  # and the best that begins another way, of another meaning
        lead = opening(ranked[0][2])
        other = next((f for f in ranked if opening(f[2]) != lead), None)
        if other is not None and (path := _path(other[1], steering.graph)).meaning not in seen:
            out.append((path, decoding.text(other[2]), other[0]))
    return out


def _path(place: Place, graph) -> Path:
    """The grammar path a history followed, with its intent and slots."""
    words, spelled, slots, spans = [], [], {}, []
    for step in place.steps:
        if step[0] == "word":
            words.append(step[1])
            spelled.append(graph.spelling.get(step[1], step[1]))
        else:
            arc, i = step[1], step[2]
            said, meant, text = arc.values[i]
            spans.append((arc.key, len(words), len(words) + len(said), len(spelled)))
            words += list(said)
            spelled.append(text)
            slots[arc.slot] = meant
    intent, slots = graph.meant(place.intent or "", slots)
    return Path(intent, words, spelled, slots, 0.0, graph.templates.get(place.state, 0), spans)

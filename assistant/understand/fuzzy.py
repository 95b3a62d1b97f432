"""Snap a misheard transcript onto the nearest sentence this home can say.

Whisper, transcribing freely, usually gets a command right but one word ("turn on the kitchen like",
"turn on standing points"), and one wrong word makes an exact template miss. The home's sentences are
known in advance (its devices, areas, colours and the few command shapes), so we list them and pick the
closest to what was heard, comparing words, letters and a rough sound-alike spelling. The score is the
confidence the conductor acts on; the gap to the best sentence that means something else is folded in,
so two equally close readings ask back instead of guessing.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from ..home.colors import COLORS
from ..home.registry import Registry

NUM = "<n>"  # where a number was said; the number itself is taken from the transcript


AMBIGUOUS = 0.05  # a rival meaning closer than this takes confidence away


@dataclass(frozen=True)
class Snap:
    sentence: str  # the home's sentence, number filled in
    score: float  # 0..1, how close the transcript is to it
    runner_up: float  # score of the closest sentence with a different meaning

    @property
    def confidence(self) -> float:
        return self.score - max(0.0, AMBIGUOUS - (self.score - self.runner_up))


@functools.lru_cache(maxsize=8192)  # the same words are compared again and again: a grammar's against each heard one
def sound_key(text: str) -> str:
    """A rough sound-alike spelling: letters that sound alike fold together, inner vowels drop, so
    "like"/"light", "lamb"/"lamp", "bedrum"/"bedroom" come closer than their letters are."""
    out = []
    for word in text.split():
        if word == NUM:
            out.append("#")
            continue
        w = word.lower()
        for a, b in (("ph", "f"), ("ght", "t"), ("gh", ""), ("ck", "k"), ("th", "t"), ("sh", "s"),
                     ("ch", "s"), ("qu", "k"), ("wh", "w"), ("kn", "n"), ("mb", "m")):
            w = w.replace(a, b)
        w = w.translate(str.maketrans("czqxvdbg", "ksksftpk"))
        w = w[:1] + re.sub(r"[aeiouyhw]", "", w[1:])
        w = re.sub(r"(.)\1+", r"\1", w)
        out.append(w)
    return " ".join(out)


GENERIC = {"the", "all", "light", "lights", "lamp", "lamps"}
WHOLE = ("all", "every", "everything", "everywhere")


def _core(target: str) -> str:
    """The words that tell one device or area from another: "the hall light" -> "hall"."""
    return " ".join(w for w in target.split() if w not in GENERIC) or target


def _numbers(text: str) -> tuple[str, list[str]]:
    """Replace said numbers by a placeholder: '30%' and '30 percent' both become '<n> percent'."""
    text = re.sub(r"(\d+)\s*%", r"\1 percent", text)
    nums = re.findall(r"\d+", text)
    return re.sub(r"\d+", NUM, text), nums


FILLER = {"the", "a", "an", "to", "in", "of", "my", "please", "percent"}


def words(text: str) -> list[str]:
    """The words of a text, without case or punctuation ("40%" says "40 percent")."""
    return re.findall(r"[\w']+", text.lower().replace("%", " percent"))


def _switched(text: str) -> str | None:
    """"on" or "off" when the words say exactly one of them."""
    words = set(text.split())
    return next(iter(words & {"on", "off"})) if len(words & {"on", "off"}) == 1 else None


class VocabularySnap:
    def __init__(self, registry: Registry, accepts=lambda sentence: True, here: str = ""):
        """`accepts`: whether the templates understand a sentence (shapes they do not know are dropped); `here`:
        the box's own area, which "the lights" (no area named) mean, so that those sentences are the
        home's too."""
        self.sentences: dict[str, str] = {}  # sentence -> meaning (sentences that mean the same share it)
        self.target_of: dict[str, str] = {}  # sentence -> the device or area words in it
        self.form: dict[str, tuple[str, str, str | None]] = {}  # sentence -> (shape, target, colour)
        self.understood: dict[str, object] = {}  # sentence -> what it means, kept by whoever asks (rescore)
        for d in registry.devices.values():
            for name in d.spoken_names:
                self._target(f"the {name}", d.id, d.color)
        for area in registry.areas:
            devices = registry.in_area(area)
            meaning = ",".join(sorted(d.id for d in devices))
            for noun in ("lights", "light"):  # same meaning as its one lamp when it has only one
                self._target(f"the {area} {noun}", meaning, any(d.color for d in devices))
                # "turn off the lights in the kitchen": the area after the noun, the other common order
                for verb in ("on", "off"):
                    self._add(f"turn {verb} the {noun} in the {area}", f"{verb}:{meaning}", f"the {area}",
                              f"turn {verb} the {noun} in {{t}}")
        self._target("all the lights", "all", True)
        known = set(self.sentences)
        if here:  # the same meaning as "the kitchen lights", so the two are never rivals
            devices = registry.in_area(here)
            meaning = ",".join(sorted(d.id for d in devices))
            for noun in ("lights", "light"):
                self._target(f"the {noun}", meaning, any(d.color for d in devices))
        self.here = set(self.sentences) - known  # the sentences that mean the box's area without naming it
        # A transcript that names an area or a device means that one, never the box's area ("set the lights
        # to 40 percent in the bedroom" is not the kitchen's, however close its words are); so does one
        # that says all of them.
        names = sorted({*registry.areas, *(n for d in registry.devices.values() for n in d.spoken_names),
                        *WHOLE}, key=len, reverse=True)
        self._names = re.compile(rf"\b({'|'.join(map(re.escape, names))})\b") if here and names else None
        self.sentences = {k: v for k, v in self.sentences.items() if accepts(k.replace(NUM, "50"))}
        self.keys = list(self.sentences)
        self.form = {k: v for k, v in self.form.items() if k in self.sentences}
        self.by_shape: dict[str, list[str]] = {}
        for sentence, (shape, _, _) in self.form.items():
            self.by_shape.setdefault(shape, []).append(sentence)
        self.sound = [sound_key(s) for s in self.keys]
        self.words = [s.split() for s in self.keys]
        self.target_core = [_core(self.target_of.get(s, s)) for s in self.keys]
        self.target_core_sound = [sound_key(c) for c in self.target_core]

    def _add(self, sentence: str, meaning: str, target: str, shape: str, colour: str | None = None) -> None:
        """`shape`: the sentence with "{t}" for its target and "{c}" for its colour."""
        self.sentences.setdefault(sentence, meaning)
        self.target_of.setdefault(sentence, target)
        self.form.setdefault(sentence, (shape, target, colour))

    def _target(self, target: str, meaning: str, color: bool) -> None:
        def add(shape: str, m: str, c: str | None = None) -> None:
            self._add(shape.format(t=target, c=c), m, target, shape, c)
        for verb in ("on", "off"):
            add(f"turn {verb} {{t}}", f"{verb}:{meaning}")
            add(f"switch {verb} {{t}}", f"{verb}:{meaning}")
        add(f"set {{t}} to {NUM} percent", f"dim:{meaning}")
        add(f"set {{t}} brightness to {NUM} percent", f"dim:{meaning}")
        add(f"dim {{t}} to {NUM} percent", f"dim:{meaning}")
        if color:
            for c in COLORS:
                add("set {t} to {c}", f"color:{c}:{meaning}", c)
                add("make {t} {c}", f"color:{c}:{meaning}", c)

    def _scored(self, text: str) -> tuple[list[tuple[float, str]], list[str]] | None:
        heard, nums = _numbers(text)
        if not heard.strip():
            return None
        # Shortlist by letters (cheap), then score letters, sound and words together.
        short = process.extract(heard, self.keys, scorer=fuzz.ratio, limit=40 + len(self.here))
        if self._names is not None and self._names.search(heard):
            short = [x for x in short if x[0] not in self.here]
        if said := _switched(heard):  # "on" heard clearly is never snapped to "off", nor the other way
            short = [x for x in short if _switched(x[0]) in (None, said)]
        short = short[:40]
        if not short:  # a home with no such sentence (no devices yet), or every one contradicts what was heard
            return None
        heard_sound, heard_words = sound_key(heard), heard.split()
        scored = []
        for sentence, letters, i in short:
            sound = fuzz.ratio(heard_sound, self.sound[i])
            words = Levenshtein.normalized_similarity(heard_words, self.words[i]) * 100
            # The carrier ("turn on the") is most of a sentence and matches anything: a sentence is only as
            # close as its device or area words are to something that was heard ("attic light" is not
            # "hall ceiling", however alike the rest is).
            target = max(fuzz.partial_ratio(self.target_core[i], heard),
                         fuzz.partial_ratio(self.target_core_sound[i], heard_sound))
            scored.append((min((letters + sound + words) / 300, target / 100), sentence))
        scored.sort(reverse=True)
        return scored, nums

    def action_heard(self, sentence: str, heard: str) -> bool:
        """A fragment is no command: what was heard may be taken for a sentence of the home only if it has
        one of the sentence's words besides the device or area it names and small words ("turn of the
        kitchen like" may be "turn off the kitchen light"; "kitchen" or "office" alone may not), or if it
        is about as long (a command misheard as other words whole, "do not forget your light", is left
        to the audio check)."""
        key, _ = _numbers(sentence)  # "set the hall light to 40 percent" is listed with a placeholder
        said = words(heard)
        if len(said) >= len(key.split()) - 1:
            return True
        action = set(words(key.replace(NUM, " "))) - set(words(self.target_of.get(key, ""))) - FILLER
        return not action or bool(action & set(said))

    def says_all(self, text: str) -> bool:
        """The text is one of the home's sentences as it is, and none of them goes on from it: a pause
        after it is not one in the middle of a sentence."""
        heard, _ = _numbers(text)
        return heard in self.sentences and not any(k.startswith(heard + " ") for k in self.keys)

    def nearest(self, text: str) -> Snap | None:
        got = self._scored(text)
        if got is None:
            return None
        scored, nums = got
        score, best = scored[0]
        meaning = self.sentences[best]
        runner_up = next((s for s, other in scored[1:] if self.sentences[other] != meaning), 0.0)
        if NUM in best:
            if len(nums) != 1:
                return None  # a percentage without exactly one number said is not one we can fill in
            best = best.replace(NUM, nums[0])
        return Snap(best, score, runner_up)

    def shortlist(self, text: str, k: int = 4) -> list[tuple[str, float]]:
        """The k closest sentences that mean different things, each with its closeness, closest first
        (percentages filled in with the one number said, or left out)."""
        got = self._scored(text)
        if got is None:
            return []
        scored, nums = got
        out, seen = [], set()
        for score, sentence in scored:
            meaning = self.sentences[sentence]
            if meaning in seen:
                continue
            if NUM in sentence:
                if len(nums) != 1:
                    continue
                sentence = sentence.replace(NUM, nums[0])
            seen.add(meaning)
            out.append((sentence, score))
            if len(out) == k:
                break
        return out

    def variants(self, sentence: str) -> list[str]:
        """The home's sentences one slot away from this one, in the same words: the same device in every
        other colour, then the same command for every other device and area (a number said is kept)."""
        key, nums = _numbers(sentence)
        if key not in self.form:
            return []
        shape, target, colour = self.form[key]
        same = self.by_shape[shape]
        if NUM in key and len(nums) != 1:
            return []
        out = [s for s in same if self.form[s][1] == target]
        out += [s for s in same if self.form[s][2] == colour and self.form[s][1] != target]
        seen = {self.sentences[key]}
        out = [s for s in out if not (self.sentences[s] in seen or seen.add(self.sentences[s]))]  # one per meaning
        return [s.replace(NUM, nums[0]) if NUM in s else s for s in out]

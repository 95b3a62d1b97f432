"""`python -m assistant.make_set`: a labelled spoken set made from a grammar, for `assistant accuracy
--labelled`. Sentences are drawn from the config's own intents (seeded, so the set can be made again),
spoken by many synthetic voices (piper at three rates, espeak-ng accents and variants at 130-175 words a
minute), padded with a little silence, and written as WAV + JSON in the shape of Rhasspy's test set; the
labels are what the grammar reads in each sentence. Speech that must do nothing (the benchmark's
non-commands) goes to non-commands/ with an empty intent."""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

from hassil.expression import Alternative, ListReference, Permutation, RuleReference, Sequence, TextChunk
from hassil.sample import sample_intents

from .accuracy import NON_COMMANDS
from .audio.wav import write_wav
from .config import ConfigError
from .models import ModelStore
from .samples import espeak, piper, trimmed, utterance
from .startup import load_config
from .types import SAMPLE_RATE
from .understand.custom import CustomIntents, from_config
from .understand.grammar import GrammarError

PIPER_RATES = (1.0, 1.25, 0.85)  # length scales: as it is, slow, fast
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
VARIANTS = ("", *(f"+m{i}" for i in range(1, 8)), *(f"+f{i}" for i in range(1, 5)))


def voices(rng: random.Random):
    """Endless (name, speak) pairs: a piper rate one time in four, else an espeak-ng accent, variant and
    speed."""
    while True:
        if rng.random() < 0.25:
            scale = rng.choice(PIPER_RATES)
            yield f"piper joe {scale}", lambda store, text, s=scale: piper(store, text, length_scale=s)
        else:
            voice, speed = rng.choice(ACCENTS) + rng.choice(VARIANTS), rng.randrange(130, 176, 5)
            yield f"espeak {voice} {speed}", lambda store, text, v=voice, s=speed: espeak(text, v, s)


def say_one(expression, custom: CustomIntents, rng: random.Random) -> str:
    """One sentence of a template, each alternative, optional part and slot value an even chance."""
    if isinstance(expression, TextChunk):
        return expression.text
    if isinstance(expression, Alternative):
        return say_one(rng.choice(expression.items), custom, rng)
    if isinstance(expression, Permutation):
        items = list(expression.items)
        rng.shuffle(items)
        return " ".join(say_one(i, custom, rng) for i in items)
    if isinstance(expression, Sequence):
        return "".join(say_one(i, custom, rng) for i in expression.items)
    if isinstance(expression, ListReference):
        sl = custom.grammar.lists[expression.list_name]
        if sl.range:
            lo, hi, step = sl.range
            return str(rng.randrange(lo, hi + 1, step))
        return rng.choice(sl.values).said
    if isinstance(expression, RuleReference):
        return say_one(custom.intents.expansion_rules[expression.rule_name].expression, custom, rng)
    raise TypeError(f"cannot say a {type(expression).__name__}")


def orders(custom: CustomIntents, n: int, rng: random.Random) -> list[tuple[str, str, dict]]:
    """`n` sentences, each with the intent and slots the grammar reads in it: an intent as often as it has
    ways to be said (counted up to 1000), then one of its templates, then each choice in it at even chances."""
    templates = {name: [s for d in it.data for s in d.sentences] for name, it in custom.intents.intents.items()}
    ways = collections.Counter(name for name, _ in sample_intents(custom.intents, max_sentences_per_intent=1000))
    names = sorted(templates)
    out = []
    while len(out) < n:
        name = rng.choices(names, [ways[n] for n in names])[0]
        text = " ".join(say_one(rng.choice(templates[name]).expression, custom, rng).split()).replace(" ,", ",")
        intent = custom.understand(custom_clean(text))
        if intent is not None:  # a sentence the grammar reads otherwise is still labelled as it reads it
            out.append((text, intent.name, intent.slots))
    return out


def custom_clean(text: str) -> str:
    return " ".join(text.lower().replace(",", " ").split())


def write(folder: Path, stem: str, pcm, text: str, intent: str, slots: dict, voice: str) -> None:
    write_wav(folder / f"{stem}.wav", pcm, SAMPLE_RATE)
    label = {"text": text, "intent": {"name": intent}, "slots": slots, "voice": voice}
    (folder / f"{stem}.json").write_text(json.dumps(label) + "\n")


def make_set(cfg_path: str, out: Path, n: int, seed: int = 0, store: ModelStore | None = None,
             non_commands: bool = True) -> int:
    custom = CustomIntents(from_config(load_config(cfg_path)))
    if not custom:
        raise GrammarError(f"{cfg_path}: no intents of its own (give [[intent]] tables or sentences_file)")
    store = store or ModelStore()
    rng = random.Random(seed)
    said = voices(rng)
    out.mkdir(parents=True, exist_ok=True)
    items = [(f"{i:04d}", *o) for i, o in enumerate(orders(custom, n, rng))]
    if non_commands:
        (out / "non-commands").mkdir(exist_ok=True)
        items += [(f"non-commands/{i:02d}", t, "", {}) for i, t in enumerate(NON_COMMANDS)]
    for stem, text, intent, slots in items:
        voice, speak = next(said)
        pcm = utterance(round(rng.uniform(0.2, 0.6), 2), trimmed(speak(store, text)), round(rng.uniform(0.4, 0.8), 2))
        write(out, stem, pcm, text, intent, slots, voice)
    return len(items)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assistant.make_set", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the config whose intents (sentences_file, [[intent]]) to say")
    p.add_argument("--out", required=True, help="folder for NNNN.wav + NNNN.json (and non-commands/)")
    p.add_argument("-n", "--count", type=int, default=200, help="sentences to draw (default 200)")
    p.add_argument("--seed", type=int, default=0, help="which sentences and voices (default 0)")
    p.add_argument("--no-non-commands", action="store_true", help="leave out non-commands/")
    args = p.parse_args(argv)
    try:
        made = make_set(args.config, Path(args.out), args.count, args.seed, non_commands=not args.no_non_commands)
    except (ConfigError, GrammarError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{made} clips in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

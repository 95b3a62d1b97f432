"""`assistant accuracy`: are spoken commands understood in a reverberant, noisy room, and is speech that
is not a command left alone?

Commands and non-commands are spoken by several synthetic voices (piper at three speaking rates,
espeak-ng variants), convolved with a room impulse response, and mixed with recorded noise at each SNR
(loudest-frame definition, see audio/mix.py). Each clip goes through the real pipeline from the
endpointer on (VAD endpointing in the noise, Whisper, understanding, MQTT to a private broker); the wake
word is left out so that its misses do not hide understanding errors (`assistant bench` times it).
A listener on the broker decides: a command succeeds when exactly its expected device messages arrive;
an everyday command (timers, the time, the date) when it is carried out with its intent and slots.

The exact-templates path ("before") is scored on the same transcripts as the robust path ("after"), so
the two differ only in understanding; its latency is the same ASR time plus its own understanding and
publish time.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import devset
from .audio.io import FileSource
from .audio.mix import add_noise, reverberate, to_int16
from .audio.wav import AudioFileError, load_pcm16k
from .bench import pct
from .broker import LocalBroker
from .config import Config
from .engines.load import Engines
from .events import EventBus, TurnMetrics
from .handlers.clock import CLOCK_INTENTS
from .handlers.timers import TIMER_INTENTS
from .home.actions import plan
from .home.colors import COLORS
from .models import ModelStore
from .mqtt_link import MqttLink
from .mqtt_recorder import MqttRecorder
from .pipeline import Assistant
from .samples import espeak, piper, utterance
from .turn import Turn

NOISE_DIR = devset.root() / "noise-rir"
SNRS = (24, 18, 12, 6)
CLEAN = "clean"  # an SNR with no noise at all

VOICES = {
    "piper joe": lambda store, t: piper(store, t),
    "piper joe slow": lambda store, t: piper(store, t, length_scale=1.25),
    "piper joe fast": lambda store, t: piper(store, t, length_scale=0.85),
    "espeak en-us+m3": lambda store, t: espeak(t, "en-us+m3", 150),
    "espeak en-gb+f2": lambda store, t: espeak(t, "en-gb+f2", 145),
    "espeak en-us+f3": lambda store, t: espeak(t, "en-us+f3", 165),
}

# Speech that is not a command: television, people talking in the room, requests this home cannot do.
NON_COMMANDS = [
    "And now, the weather for the weekend.", "Tonight on channel four, the news at ten.",
    "He scored in the last minute of the game.", "Stay tuned, we will be right back after these messages.",
    "The recipe needs two cups of flour and a pinch of salt.", "Did you remember to buy milk?",
    "I think we should leave at eight tomorrow.", "Can you pass me the remote?",
    "What time does the shop close today?", "The kids are asleep upstairs.", "That movie was far too long.",
    "Let's order pizza tonight.", "What is the weather like tomorrow?", "Play some jazz music.",
    "Call my mother.", "How tall is Mount Everest?",
    "Add eggs to the shopping list.", "Tell me a joke.", "Who won the football match yesterday?",
    "The train was delayed again this morning.", "Thank you very much for watching.",
    "My phone battery is almost empty.", "Open the pod bay doors.", "What's on television tonight?",
]


def command_texts(assistant: Assistant) -> list[str]:
    """Commands this home understands, in the words people use."""
    reg = assistant.home.registry
    out = []
    for i, d in enumerate(reg.devices.values()):
        for name in d.spoken_names:
            out += [f"Turn on the {name}.", f"Turn off the {name}.", f"Set the {name} to {20 + 10 * i} percent."]
            if d.color:
                out.append(f"Make the {name} {list(COLORS)[2 + i % 6]}.")
    for area in reg.areas:
        out += [f"Turn on the {area} lights.", f"Turn off the lights in the {area}."]
    out.append("Turn off all the lights.")
    return out + EVERYDAY


# What people say every day that switches nothing: graded by the intent carried out and its slots.
EVERYDAY = ["Set a timer for five minutes.", "Set a ten minute pizza timer.", "Set a timer for 30 seconds.",
            "How much time is left on my timer?", "Cancel the pizza timer.", "What time is it?",
            "What's the date today?", "What day is it?"]


EVERYDAY_INTENTS = (*TIMER_INTENTS, *CLOCK_INTENTS)


def meaning(name: str, slots: dict) -> dict:
    """An intent and its slots, comparable: "5", 5 and 5.0 minutes are the same timer, "Kitchen_Light" and
    "kitchen light" the same name."""
    def value(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return " ".join(str(v).replace("_", " ").lower().split())
    return {"intent": name, "slots": {k: value(v) for k, v in slots.items()}}


def acted_on(intent) -> dict:
    return meaning(intent.name, intent.slots)


def expected(assistant: Assistant, text: str) -> dict[str, dict]:
    intent = assistant.understanding.templates.understand(text)
    if text in EVERYDAY and intent and intent.confidence == 1:
        return acted_on(intent)
    outcome = plan(intent, assistant.home.registry) if intent and intent.confidence == 1 else None
    if not outcome or not outcome.commands:
        raise ValueError(f"the benchmark's command {text!r} is not understood exactly by this home")
    return {c.topic: json.loads(c.payload) for c in outcome.commands}


def what_was_done(events, devices: MqttRecorder) -> dict:
    """The device messages that arrived, or else the everyday intent that was carried out (not one only
    asked about: the turn names the intent it asks about too)."""
    got = devices.take(sum(e.kind == "command" and not e.data["topic"].startswith(devices.own) for e in events))
    asked = any(e.kind == "ask" for e in events)
    acted = [e.data["intent"] for e in events
             if e.kind == "intent" and e.data["intent"].name in EVERYDAY_INTENTS and not asked]
    return got or (acted_on(acted[0]) if acted else {})


@dataclass
class Result:
    snr: int
    voice: str  # or, for a labelled recording, its file name
    text: str
    command: bool
    heard: str = ""
    outcome: dict = field(default_factory=dict)  # path -> "ok" | "wrong" | "asked" | "none"
    latency: dict = field(default_factory=dict)  # path -> end of speech to publish, seconds
    confidence: float | None = None
    endpoint: str = ""  # why the endpointer ended the command ("end_of_input": no pause heard in the noise)
    got: dict = field(default_factory=dict)  # path -> the device messages that arrived, when not the expected


def _grade(want: dict | None, got: dict, asked: bool) -> str:
    if got:
        return "ok" if got == want else "wrong"
    return "asked" if asked else "none"


class Room:
    """Recorded noise and room impulse responses (noise-rir/), and how a clip sounds in them."""

    def __init__(self, noise_dir: Path = NOISE_DIR):
        self.noises = [load_pcm16k(p) for p in sorted(Path(noise_dir).glob("noise*.wav"))]
        self.rirs = [load_pcm16k(p) for p in sorted(Path(noise_dir).glob("rir*.wav"))]
        if not self.noises or not self.rirs:
            raise AudioFileError(f"{noise_dir}: no noise*.wav and rir*.wav here (give --noise-dir, or set "
                                 f"$ASSISTANT_DEVSET to the development audio's folder). {devset.SOURCES}")

    def mix(self, clean: np.ndarray, snr, k: int, rng, reverb: bool = True) -> np.ndarray:
        """`clean` across the room (`reverb`) with noise at `snr` dB (none at CLEAN); `k` picks the noise
        and the room."""
        x = reverberate(clean, self.rirs[k % len(self.rirs)]) if reverb else clean.astype(np.float64)
        if snr == CLEAN:
            return to_int16(x)
        return to_int16(add_noise(x, self.noises[k % len(self.noises)], snr, offset=int(rng.integers(16000 * 3))))


class Rig:
    """The real pipeline from the endpointer on, wired to a private broker, and a listener saying what the
    home was asked to do: what every clip of `assistant accuracy` goes through."""

    def __init__(self, cfg: Config, store: ModelStore, llm: bool = False):
        cfg = copy.deepcopy(cfg)
        if not llm:
            cfg.llm.route = "templates"
        self.engines = Engines.load(cfg, store, speech=False)
        self._stack = contextlib.ExitStack()
        broker = self._stack.enter_context(LocalBroker())
        # the timers it starts are not the user's
        cfg.mqtt.url, cfg.state_dir = broker.url, self._stack.enter_context(tempfile.TemporaryDirectory())
        self.cfg = cfg
        self.link = MqttLink(broker.url, f"{cfg.mqtt.topic_prefix}/{cfg.site}/availability")
        self.link.start()
        self.link.wait_connected(5)
        self.events: list = []
        bus = EventBus()
        bus.subscribe(self.events.append)
        self.assistant = Assistant(cfg, self.engines, self.link, None, bus)
        own = (cfg.mqtt.topic_prefix + "/", cfg.discovery.homeassistant_prefix + "/")
        self.devices = MqttRecorder(broker.url, own=own)
        self.intents = MqttRecorder(broker.url, topics=(f"{cfg.mqtt.topic_prefix}/{cfg.site}/intent/#",), own=())

    def __enter__(self) -> "Rig":
        return self

    def __exit__(self, *exc) -> None:
        self.devices.close()
        self.intents.close()
        self.assistant.close()
        self.link.stop()
        self._stack.close()

    def hear(self, r: Result, pcm: np.ndarray, want: dict | None, by_intent: bool = False):
        """One clip through the pipeline, graded into `r` on the "after" path against `want`: device
        messages, or with `by_intent` the intent published ({"intent", "slots"}). Returns the turn's
        metrics."""
        a, events = self.assistant, self.events
        events.clear()
        a.understanding.forget()
        asyncio.run(a.run(FileSource(pcm=pcm, tail_s=0.3), awake=True))
        a.understanding.forget()
        turn = next((e.data["metrics"] for e in events if e.kind == "turn"), None)
        r.heard = next((e.data["text"] for e in events if e.kind == "transcript"), "")
        r.endpoint = turn.endpoint_reason if turn else ""
        asked = any(e.kind == "ask" for e in events)
        intents = [e.data["intent"] for e in events if e.kind in ("intent", "ask")]
        r.confidence = intents[0].confidence if intents else None
        published = self.intents.take(sum(e.kind == "acted" and e.data["outcome"].intent is not None
                                          for e in events))
        got = what_was_done(events, self.devices)
        if by_intent and published:
            body = next(iter(published.values()))
            got = meaning(body.get("name"), body.get("slots") or {})
        forget_timers(a)
        r.outcome["after"] = _grade(want, got, asked)
        if r.outcome["after"] == "wrong":
            r.got["after"] = got
        if turn and turn.eos_to_publish_s is not None:
            r.latency["after"] = turn.eos_to_publish_s
        return turn


def run_accuracy(cfg: Config, store: ModelStore, per_snr: int = 50, non_commands: int = 100,
                 snrs=SNRS, noise_dir: Path = NOISE_DIR, seed: int = 0, llm: bool = False) -> dict:
    """`llm`: keep the config's LLM route (what the templates leave goes to the LLM); by default the
    benchmark measures the templates and the listening alone, which is also what decides false actions
    on speech that is not for us before any LLM is asked."""
    room = Room(noise_dir)
    rng = np.random.default_rng(seed)
    cache: dict[tuple[str, str], np.ndarray] = {}
    results: list[Result] = []
    with Rig(cfg, store, llm) as rig:
        before_cfg = copy.deepcopy(rig.cfg)
        before_cfg.understand.fuzzy = False
        before = Assistant(before_cfg, rig.engines, rig.link, None, EventBus())
        devices = rig.devices
        texts = command_texts(rig.assistant)
        wants = {t: expected(before, t) for t in texts}
        voices = list(VOICES)
        for snr in snrs:
            n_non = non_commands // len(snrs)
            items = [(texts[rng.integers(len(texts))], True) for _ in range(per_snr)]
            items += [(NON_COMMANDS[rng.integers(len(NON_COMMANDS))], False) for _ in range(n_non)]
            for k, (text, is_command) in enumerate(items):
                voice = voices[rng.integers(len(voices))]
                clean = utterance(0.6, spoken(store, cache, voice, text), 1.2)
                r = Result(snr, voice, text, is_command)
                results.append(r)
                want = wants.get(text)
                # after: the whole pipeline on the audio
                turn = rig.hear(r, room.mix(clean, snr, k, rng), want)
                # before: the same transcript through exact templates, timed as if it followed the same ASR
                if not r.heard.strip() or turn is None:
                    r.outcome["before"] = _grade(want, devices.take(0), False)
                    continue
                m = TurnMetrics(hangover_s=turn.hangover_s, asr_s=turn.asr_s)
                out = asyncio.run(typed(before, r.heard, m, time.perf_counter() - turn.asr_s))
                got = devices.take(len(out.commands))
                if not got and out.intent and out.intent.name in EVERYDAY_INTENTS and out.ok:
                    got = acted_on(out.intent)
                forget_timers(before)
                r.outcome["before"] = _grade(want, got, False)
                if m.eos_to_publish_s is not None:
                    r.latency["before"] = m.eos_to_publish_s
        before.close()
    return report(results, snrs)


def spoken(store: ModelStore, cache: dict, voice: str, text: str) -> np.ndarray:
    """`text` in one of VOICES, synthesized once."""
    if (voice, text) not in cache:
        cache[voice, text] = VOICES[voice](store, text)
    return cache[voice, text]


def forget_timers(assistant: Assistant) -> None:
    """Each clip starts with no timers."""
    for t in list(assistant.timers.timers.values()):
        assistant.timers.cancel(t)


async def typed(assistant: Assistant, text: str, m: TurnMetrics, t0: float):
    """A transcript understood and carried out as a typed request, timed from `t0`."""
    turn = Turn(assistant.parts, m, t0)
    return await turn.act(await turn.understand(text))


HEADER = ["SNR is loudest-frame (32 ms RMS) speech against noise, after room reverberation.",
          "before = the best free transcript + exact templates; after = the readings weighed against the",
          "home's sentences (asr.nbest), checked on the audio (understand.check), snapped."]


def report(results: list[Result], snrs, paths=("before", "after"), header=HEADER) -> dict:
    table = []
    for path in paths:
        for snr in snrs:
            cmd = [r for r in results if r.snr == snr and r.command]
            non = [r for r in results if r.snr == snr and not r.command]
            lat = [r.latency[path] for r in cmd if path in r.latency]
            count = lambda rs, o: sum(r.outcome.get(path) == o for r in rs)  # noqa: E731
            table.append({
                "path": path, "snr_db": snr, "commands": len(cmd), "ok": count(cmd, "ok"),
                "wrong": count(cmd, "wrong"), "asked": count(cmd, "asked"), "none": count(cmd, "none"),
                "non_commands": len(non), "false_actions": count(non, "ok") + count(non, "wrong"),
                "non_asked": count(non, "asked"),
                "latency_median_s": statistics.median(lat) if lat else None,
                "latency_p90_s": pct(lat, 0.9) if lat else None,
            })
    data = {"table": table, "results": [r.__dict__ for r in results]}
    unpaused = {snr: sum(r.endpoint == "end_of_input" for r in results if r.snr == snr) for snr in snrs}
    data["text"] = _text(table, header) + (
        "\nNo pause heard before the clip ended (the noise sounded like speech), clips per SNR: "
        + ", ".join(f"{k} dB {v}" for k, v in unpaused.items()))
    return data


def _text(table: list[dict], header=HEADER) -> str:
    lines = [*header, "",
             f"{'path':7}{'SNR':>6}{'success':>13}{'wrong':>7}{'asked':>7}{'none':>6}{'false actions':>15}"
             f"{'non-cmd asked':>15}{'eos->publish med/p90':>24}"]
    for row in table:
        ms = (f"{row['latency_median_s'] * 1000:.0f}/{row['latency_p90_s'] * 1000:.0f} ms"
              if row["latency_median_s"] is not None else "-")
        lines.append(f"{row['path']:7}{row['snr_db']:>5}  {row['ok']:>4}/{row['commands']:<3} "
                     f"{100 * row['ok'] / max(row['commands'], 1):3.0f}%{row['wrong']:>7}{row['asked']:>7}"
                     f"{row['none']:>6}{row['false_actions']:>10}/{row['non_commands']:<4}{row['non_asked']:>15}"
                     f"{ms:>24}")
    return "\n".join(lines)


# -- a labelled folder: the user's own recordings against the user's own config -----------------------

# One word alone is never a command unless the home holds it as a sentence; "stop" is left out (it is one).
SINGLE_WORDS = ["pause", "next", "office", "kitchen", "lamp", "light", "music", "hello", "okay", "thanks",
                "coffee", "later"]
LABELLED_HEADER = ["SNR is loudest-frame (32 ms RMS) speech against noise; clean = no noise added (with --reverb,",
                   "the clips are put across a room first).",
                   "success = the intent published and every slot right; false actions = speech that is not a",
                   "command (spoken by synthetic voices) that published an intent or a device message."]


class LabelError(ValueError):
    """The labelled folder or file as a whole is unusable."""


@dataclass
class Clip:
    name: str
    pcm: np.ndarray
    want: dict | None  # {"intent", "slots"}, or None: speech that must do nothing
    text: str = ""


def _label(raw) -> tuple[dict | None, str]:
    """Rhasspy's test-set shape ({"text", "intent": {"name"}, "slots"}) or {"intent": NAME, "slots"}; an
    intent of null or "" is speech that must do nothing."""
    if not isinstance(raw, dict) or "intent" not in raw:
        raise ValueError("expected an object with 'intent' and 'slots'")
    name = raw["intent"].get("name") if isinstance(raw["intent"], dict) else raw["intent"]
    if name is not None and not isinstance(name, str):
        raise ValueError("'intent' should be a name or {\"name\": ...}")
    slots = raw.get("slots") or {}
    if not isinstance(slots, dict) or not all(isinstance(v, (str, int, float)) for v in slots.values()):
        raise ValueError("'slots' should map each slot's name to its value")
    return (meaning(name, slots) if name else None), str(raw.get("text") or "")


def load_labelled(path: str | Path) -> tuple[list[Clip], list[str]]:
    """A folder of WAVs each beside a JSON label of the same name, or one JSON file mapping WAV names (in
    its folder) to labels. Returns the clips and, one line each, the files that could not be used."""
    path = Path(path)
    errors: list[str] = []
    labels: list[tuple[Path, object, Path]] = []  # (wav, its label, where the label is)
    if path.is_dir():
        wavs = sorted(path.glob("*.wav"))
        if not wavs:
            raise LabelError(f"{path}: no .wav files in this folder")
        for wav in wavs:
            j = wav.with_suffix(".json")
            try:
                labels.append((wav, json.loads(j.read_text(encoding="utf-8")), j))
            except FileNotFoundError:
                errors.append(f"{j}: missing, so {wav.name} has no label")
            except (OSError, ValueError) as e:
                errors.append(f"{j}: not a JSON label: {e}")
    elif path.is_file():
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise LabelError(f"{path}: not a JSON labels file: {e}") from None
        if not isinstance(table, dict) or not table:
            raise LabelError(f"{path}: expected an object mapping WAV file names to {{\"intent\", \"slots\"}}")
        labels = [(path.parent / str(name), label, path) for name, label in table.items()]
    else:
        raise LabelError(f"{path}: no such folder or labels file")
    clips = []
    for wav, raw, where in labels:
        try:
            want, text = _label(raw)
            pcm = load_pcm16k(wav)
        except ValueError as e:
            errors.append(f"{where}: {wav.name}: {e}")
            continue
        except AudioFileError as e:
            errors.append(str(e))
            continue
        if not len(pcm):
            errors.append(f"{wav}: no audio in it")
            continue
        clips.append(Clip(wav.name, pcm, want, text))
    return clips, errors


def non_command_texts(assistant: Assistant) -> list[str]:
    """NON_COMMANDS, single words and each of the grammar's slot values said alone: whichever of them the
    home does not hold as a sentence of its own."""
    values = [v.said for sl in assistant.understanding.custom.grammar.lists.values() for v in sl.values]
    texts = dict.fromkeys([*NON_COMMANDS, *SINGLE_WORDS, *values])
    return [t for t in texts if assistant.understanding.lookup(t.lower().strip(".?!")) is None]


def run_labelled(cfg: Config, store: ModelStore, source: str | Path, snrs=(CLEAN, *SNRS), limit: int | None = None,
                 non_commands: int = 100, noise_dir: Path = NOISE_DIR, seed: int = 0, llm: bool = False,
                 reverb: bool = False) -> dict:
    """Each labelled clip (at most `limit`, a seeded choice) at each SNR, graded on the intent and slots it
    published; and `non_commands` in all of NON_COMMANDS, single words and slot values, spoken by VOICES,
    for false actions. `reverb`: put the clips across a room too (for dry, synthetic speech)."""
    clips, errors = load_labelled(source)
    room = Room(noise_dir)
    rng = np.random.default_rng(seed)
    if limit is not None and len(clips) > limit:
        clips = [clips[i] for i in sorted(rng.choice(len(clips), limit, replace=False))]
    cache: dict[tuple[str, str], np.ndarray] = {}
    results: list[Result] = []
    with Rig(cfg, store, llm) as rig:
        pool = non_command_texts(rig.assistant)
        voices = list(VOICES)
        for snr in snrs:
            for k, clip in enumerate(clips):
                r = Result(snr, clip.name, clip.text, clip.want is not None)
                results.append(r)
                rig.hear(r, room.mix(utterance(0.3, clip.pcm, 1.0), snr, k, rng, reverb), clip.want, by_intent=True)
            for k in range(non_commands // len(snrs)):
                text, voice = pool[rng.integers(len(pool))], voices[rng.integers(len(voices))]
                r = Result(snr, voice, text, False)
                results.append(r)
                clean = utterance(0.6, spoken(store, cache, voice, text), 1.2)
                rig.hear(r, room.mix(clean, snr, k, rng), None, by_intent=True)
    data = report(results, snrs, paths=("after",), header=LABELLED_HEADER)
    data["errors"] = errors
    if errors:
        data["text"] += f"\n{len(errors)} file(s) could not be used (each named above)."
    return data

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
from .audio.wav import load_pcm16k
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


def acted_on(intent) -> dict:
    def value(v):  # "5", 5 and 5.0 minutes are the same timer
        try:
            return float(v)
        except (TypeError, ValueError):
            return str(v).strip().lower()
    return {"intent": intent.name, "slots": {k: value(v) for k, v in intent.slots.items()}}


def expected(assistant: Assistant, text: str) -> dict[str, dict]:
    intent = assistant.understanding.templates.understand(text)
    if text in EVERYDAY and intent and intent.confidence == 1:
        return acted_on(intent)
    outcome = plan(intent, assistant.home.registry) if intent and intent.confidence == 1 else None
    if not outcome or not outcome.commands:
        raise ValueError(f"the benchmark's command {text!r} is not understood exactly by this home")
    return {c.topic: json.loads(c.payload) for c in outcome.commands}


def what_was_done(events, devices: MqttRecorder) -> dict:
    """The device messages that arrived, or else the everyday intent that was carried out."""
    got = devices.take(sum(e.kind == "command" for e in events))
    acted = [e.data["intent"] for e in events if e.kind == "intent" and e.data["intent"].name in EVERYDAY_INTENTS]
    return got or (acted_on(acted[0]) if acted else {})


@dataclass
class Result:
    snr: int
    voice: str
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


def run_accuracy(cfg: Config, store: ModelStore, per_snr: int = 50, non_commands: int = 100,
                 snrs=SNRS, noise_dir: Path = NOISE_DIR, seed: int = 0, llm: bool = False) -> dict:
    """`llm`: keep the config's LLM route (what the templates leave goes to the LLM); by default the
    benchmark measures the templates and the listening alone, which is also what decides false actions
    on speech that is not for us before any LLM is asked."""
    cfg = copy.deepcopy(cfg)
    if not llm:
        cfg.llm.route = "templates"
    noises = [load_pcm16k(p) for p in sorted(noise_dir.glob("noise*.wav"))]
    rirs = [load_pcm16k(p) for p in sorted(noise_dir.glob("rir*.wav"))]
    engines = Engines.load(cfg, store, speech=False)
    rng = np.random.default_rng(seed)
    cache: dict[tuple[str, str], np.ndarray] = {}
    results: list[Result] = []
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as state:
        cfg.mqtt.url, cfg.state_dir = broker.url, state  # the timers it starts are not the user's
        before_cfg = copy.deepcopy(cfg)
        before_cfg.understand.fuzzy = False
        link = MqttLink(broker.url, f"{cfg.mqtt.topic_prefix}/{cfg.site}/availability")
        link.start()
        link.wait_connected(5)
        events: list = []
        bus = EventBus()
        bus.subscribe(events.append)
        after = Assistant(cfg, engines, link, None, bus)
        before = Assistant(before_cfg, engines, link, None, EventBus())
        own = (cfg.mqtt.topic_prefix + "/", cfg.discovery.homeassistant_prefix + "/")
        devices = MqttRecorder(broker.url, own=own)
        texts = command_texts(after)
        wants = {t: expected(before, t) for t in texts}
        voices = list(VOICES)
        for snr in snrs:
            n_non = non_commands // len(snrs)
            items = [(texts[rng.integers(len(texts))], True) for _ in range(per_snr)]
            items += [(NON_COMMANDS[rng.integers(len(NON_COMMANDS))], False) for _ in range(n_non)]
            for k, (text, is_command) in enumerate(items):
                voice = voices[rng.integers(len(voices))]
                if (voice, text) not in cache:
                    cache[voice, text] = VOICES[voice](store, text)
                clean = utterance(0.6, cache[voice, text], 1.2)
                noisy = add_noise(reverberate(clean, rirs[k % len(rirs)]), noises[k % len(noises)], snr,
                                  offset=int(rng.integers(16000 * 3)))
                r = Result(snr, voice, text, is_command)
                results.append(r)
                want = wants.get(text)
                # after: the whole pipeline on the audio
                events.clear()
                after.understanding.forget()
                asyncio.run(after.run(FileSource(pcm=to_int16(noisy), tail_s=0.3), awake=True))
                after.understanding.forget()
                turn = next((e.data["metrics"] for e in events if e.kind == "turn"), None)
                r.heard = next((e.data["text"] for e in events if e.kind == "transcript"), "")
                r.endpoint = turn.endpoint_reason if turn else ""
                asked = any(e.kind == "ask" for e in events)
                intents = [e.data["intent"] for e in events if e.kind in ("intent", "ask")]
                r.confidence = intents[0].confidence if intents else None
                got = what_was_done(events, devices)
                forget_timers(after)
                r.outcome["after"] = _grade(want, got, asked)
                if r.outcome["after"] == "wrong":
                    r.got["after"] = got
                if turn and turn.eos_to_publish_s is not None:
                    r.latency["after"] = turn.eos_to_publish_s
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
        devices.close()
        after.close()
        before.close()
        link.stop()
    return report(results, snrs)


def forget_timers(assistant: Assistant) -> None:
    """Each clip starts with no timers."""
    for t in list(assistant.timers.timers.values()):
        assistant.timers.cancel(t)


async def typed(assistant: Assistant, text: str, m: TurnMetrics, t0: float):
    """A transcript understood and carried out as a typed request, timed from `t0`."""
    turn = Turn(assistant.parts, m, t0)
    return await turn.act(await turn.understand(text))


def report(results: list[Result], snrs) -> dict:
    table = []
    for path in ("before", "after"):
        for snr in snrs:
            cmd = [r for r in results if r.snr == snr and r.command]
            non = [r for r in results if r.snr == snr and not r.command]
            lat = [r.latency[path] for r in cmd if path in r.latency]
            count = lambda rs, o: sum(r.outcome.get(path) == o for r in rs)  # noqa: E731
            table.append({
                "path": path, "snr_db": snr, "commands": len(cmd), "ok": count(cmd, "ok"),
                "wrong": count(cmd, "wrong"), "asked": count(cmd, "asked"), "non_commands": len(non),
                "false_actions": count(non, "ok") + count(non, "wrong"), "non_asked": count(non, "asked"),
                "latency_median_s": statistics.median(lat) if lat else None,
                "latency_p90_s": pct(lat, 0.9) if lat else None,
            })
    data = {"table": table, "results": [r.__dict__ for r in results]}
    unpaused = {snr: sum(r.endpoint == "end_of_input" for r in results if r.snr == snr) for snr in snrs}
    data["text"] = _text(table) + ("\nNo pause heard before the clip ended (the noise sounded like speech), "
                                   "clips per SNR: " + ", ".join(f"{k} dB {v}" for k, v in unpaused.items()))
    return data


def _text(table: list[dict]) -> str:
    lines = ["SNR is loudest-frame (32 ms RMS) speech against noise, after room reverberation.",
             "before = the best free transcript + exact templates; after = the readings weighed against the",
             "home's sentences (asr.nbest), checked on the audio (understand.check), snapped.", "",
             f"{'path':7}{'SNR':>5}{'success':>13}{'wrong':>7}{'asked':>7}{'false actions':>15}"
             f"{'non-cmd asked':>15}{'eos->publish med/p90':>24}"]
    for row in table:
        ms = (f"{row['latency_median_s'] * 1000:.0f}/{row['latency_p90_s'] * 1000:.0f} ms"
              if row["latency_median_s"] is not None else "-")
        lines.append(f"{row['path']:7}{row['snr_db']:>4}  {row['ok']:>4}/{row['commands']:<3} "
                     f"{100 * row['ok'] / max(row['commands'], 1):3.0f}%{row['wrong']:>7}{row['asked']:>7}"
                     f"{row['false_actions']:>10}/{row['non_commands']:<4}{row['non_asked']:>15}{ms:>24}")
    return "\n".join(lines)

"""`assistant soak`: many spoken commands through the real pipeline while the broker is killed, frozen and
restarted under it.

Every command must be delivered exactly once or answered as failed: never twice (QoS 1 resends after a
reconnect; the link must drop what it answered as failed) and never late. An independent subscriber, the
witness, notes when each device message arrives; a turn's window runs from its start to the next turn's
start, and a message for it arriving after that, or after the box answered it as failed, is late.
Memory is sampled as it goes, and the box must still answer one more command at the end.

Faults come at seeded turns, just as the turn's command is about to go out (or at the turn's end when it
had none to send), and are over, the broker back, before the next turn starts.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import paho.mqtt.client as mqtt

from .accuracy import VOICES, expected
from .audio.io import FileSource
from .bench import commands_for
from .broker import LocalBroker
from .config import Config
from .engines.load import Engines
from .events import Event, EventBus, Kind
from .home.actions import plan
from .models import ModelStore
from .mqtt_link import MqttLink, parse_url
from .mqtt_recorder import OWN_DISCOVERY
from .pipeline import Assistant
from .samples import utterance

FAULTS = ("kill", "freeze", "restart")
SOAK_VOICES = ("piper joe", "espeak en-us+m3")  # clean speech the recogniser gets right
WARMUP_TURNS = 2  # no fault before this turn
KILL_PAUSE_S = 1.0  # how long a killed broker stays down
FREEZE_EXTRA_S = 1.0  # a frozen broker stays frozen this much longer than the command timeout
RECONNECT_S = 35.0  # the link's reconnect backoff tops out at 30 s
TURN_LIMIT_S = 120.0  # a turn taking longer has hung
ARRIVAL_WAIT_S = 2.0  # for a delivered command to reach the witness before the next turn starts


@dataclass(frozen=True)
class Sample:
    voice: str
    text: str
    pcm: np.ndarray
    want: dict[str, dict]  # topic -> payload the exact templates make of the text


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic()
    topic: str
    payload: str


@dataclass
class TurnRecord:
    sample: Sample
    start: float
    intended: dict[str, str] = field(default_factory=dict)  # topic -> payload the box set out to send
    heard: str = ""
    failed_at: float | None = None  # when the box answered the command as failed (an mqtt error)
    errors: list[str] = field(default_factory=list)  # where other parts failed
    hung: bool = False

    @property
    def misheard(self) -> bool:
        return {t: json.loads(p) for t, p in self.intended.items()} != self.sample.want


class Witness:
    """Device messages on the broker with their arrival times. Unlike the MqttRecorder it subscribes again
    after every reconnect, so it outlives broker restarts."""

    def __init__(self, url: str, own: tuple[str, ...]):
        self.own = own
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # back before the box is
        self.client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_disconnect = lambda *_: self.subscribed.clear()
        self.client.on_message = self._on_message
        host, port, _ = parse_url(url)
        self.client.connect_async(host, port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        # A retained message is replayed on subscribing: not a new delivery.
        if msg.retain or msg.topic.startswith(self.own) or OWN_DISCOVERY in msg.topic:
            return
        with self.lock:
            self.arrivals.append(Arrival(time.monotonic(), msg.topic, msg.payload.decode(errors="replace")))

    def wait_for(self, count: int, since: float, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while self.count_since(since) < count and time.monotonic() < end:
            time.sleep(0.01)

    def count_since(self, since: float) -> int:
        with self.lock:
            return sum(a.at >= since for a in self.arrivals)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Faults:
    """The broker's faults, each at its planned turn; the recovery runs in the background so the turn
    meets the fault, and settle() waits for it."""

    def __init__(self, broker: LocalBroker, planned: dict[int, str], freeze_s: float):
        self.broker, self.planned, self.freeze_s = broker, planned, freeze_s
        self.armed: str | None = None
        self.injected: Counter[str] = Counter()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soak-recovery")
        self.recovery = None

    def arm(self, turn: int) -> None:
        self.armed = self.planned.get(turn)

    def on_event(self, event: Event) -> None:
        if event.kind == Kind.INTENT:
            self.fire()

    def fire(self) -> None:
        kind, self.armed = self.armed, None
        if kind is not None:
            self.injected[kind] += 1
            self.recovery = self.pool.submit(getattr(self, f"_{kind}")())

    def settle(self) -> None:
        """Fires a fault still armed (its turn sent nothing) and waits until the broker is back."""
        self.fire()
        if self.recovery is not None:
            self.recovery.result()  # a broker that would not start again ends the soak here
            self.recovery = None

    # Each fault strikes now and returns its recovery.

    def _kill(self):
        self.broker.kill()
        return later(KILL_PAUSE_S, self.broker.start)

    def _freeze(self):
        self.broker.freeze()
        return later(self.freeze_s, self.broker.thaw)

    def _restart(self):
        return self.broker.restart


def later(seconds: float, fn):
    def run():
        time.sleep(seconds)
        fn()
    return run


class TooFewTurns(ValueError):
    """More faults asked for than the run has turns to put them in."""


def fault_plan(rng: random.Random, turns: int, per_kind: int) -> dict[int, str]:
    """Turn index -> fault, at seeded turns after the warm-up."""
    kinds = [k for k in FAULTS for _ in range(per_kind)]
    if turns - WARMUP_TURNS < len(kinds):
        raise TooFewTurns(f"{len(kinds)} faults need at least {len(kinds) + WARMUP_TURNS} turns (--turns)")
    return dict(zip(rng.sample(range(WARMUP_TURNS, turns), len(kinds)), kinds))


def synthesize(store: ModelStore, assistant: Assistant, cfg: Config) -> list[Sample]:
    """Each command of the home in each voice, spoken once and kept."""
    return [Sample(voice, text, utterance(0.4, VOICES[voice](store, text), 1.0), expected(assistant, text))
            for text in commands_for(cfg) for voice in SOAK_VOICES]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 1024


def slope_per_1000(points: list[tuple[int, float]]) -> float | None:
    """Least-squares MB per 1000 turns."""
    if len({turn for turn, _ in points}) < 2:
        return None
    turns, mb = zip(*points)
    return float(np.polyfit(turns, mb, 1)[0] * 1000)


def intended(events: list[Event], assistant: Assistant) -> dict[str, str]:
    """The device messages the turn set out to send: none when it asked back or understood nothing."""
    intent = next((e.data["intent"] for e in events if e.kind == Kind.INTENT), None)
    if intent is None or any(e.kind == Kind.ASK for e in events):
        return {}
    return {c.topic: c.payload for c in plan(intent, assistant.home.registry).commands}


def run_turn(assistant: Assistant, sample: Sample, events: list[tuple[float, Event]]) -> TurnRecord:
    events.clear()
    record = TurnRecord(sample, time.monotonic())
    heard = assistant.run(FileSource(pcm=sample.pcm, tail_s=0.3), awake=True)
    try:
        asyncio.run(asyncio.wait_for(heard, TURN_LIMIT_S))
    except TimeoutError:
        record.hung = True
    assistant.understanding.forget()  # a question asked back is not answered by the next command
    evs = [e for _, e in events]
    record.intended = intended(evs, assistant)
    record.heard = next((e.data["text"] for e in evs if e.kind == Kind.TRANSCRIPT), "")
    for at, e in events:
        if e.kind == Kind.ERROR and e.data["where"] == "mqtt":
            record.failed_at = at
        elif e.kind == Kind.ERROR:
            record.errors.append(e.data["where"])
    return record


def run_soak(cfg: Config, store: ModelStore, turns: int = 1000, faults: int = 10, seed: int = 0,
             command_timeout_s: float = 1.5, rss_every: int = 50) -> dict:
    t0 = time.monotonic()
    cfg = copy.deepcopy(cfg)
    cfg.llm.route = "templates"  # the LLM would dominate the time
    cfg.mqtt.command_timeout_s = command_timeout_s
    engines = Engines.load(cfg, store, speech=False)
    rng = random.Random(seed)
    events: list[tuple[float, Event]] = []
    bus = EventBus()
    bus.subscribe(lambda e: events.append((time.monotonic(), e)))
    with LocalBroker() as broker:
        cfg.mqtt.url = broker.url
        link = MqttLink.from_config(cfg.mqtt, f"{cfg.mqtt.topic_prefix}/{cfg.site}/availability")
        link.start()
        link.wait_connected(5)
        assistant = Assistant(cfg, engines, link, None, bus)
        witness = Witness(broker.url, (cfg.mqtt.topic_prefix + "/", cfg.discovery.homeassistant_prefix + "/"))
        samples = synthesize(store, assistant, cfg)
        injector = Faults(broker, fault_plan(rng, turns, faults), command_timeout_s + FREEZE_EXTRA_S)
        bus.subscribe(injector.on_event)
        records, rss = [], []
        try:
            for i in range(turns):
                if i % rss_every == 0:
                    rss.append((i, rss_mb()))
                previous = records[-1].sample.text if records else None
                injector.arm(i)
                records.append(next_turn(assistant, rng.choice([s for s in samples if s.text != previous]),
                                         events, witness))
                injector.settle()
            rss.append((turns, rss_mb()))
            link.wait_connected(RECONNECT_S)  # the box reconnects by itself within its backoff
            final = next_turn(assistant, still_heard(records, samples), events, witness)
            time.sleep(ARRIVAL_WAIT_S)  # anything late for the last turns arrives now
        finally:
            witness.close()
            assistant.close()
            link.stop()
    return report(records, final, witness.arrivals, injector, rss, time.monotonic() - t0, command_timeout_s)


def next_turn(assistant: Assistant, sample: Sample, events, witness: Witness) -> TurnRecord:
    """One turn on a broker that is up (the witness subscribed), then time for what it sent to arrive."""
    witness.subscribed.wait(RECONNECT_S)
    record = run_turn(assistant, sample, events)
    if record.failed_at is None:
        witness.wait_for(len(record.intended), record.start, ARRIVAL_WAIT_S)
    return record


def still_heard(records: list[TurnRecord], samples: list[Sample]) -> Sample:
    """A command the recogniser got right during the run, for the last check."""
    return next((r.sample for r in records if not r.misheard), samples[0])


@dataclass
class Verdict:
    outcome: str  # delivered | failed | lost | nothing sent | hung
    duplicate: bool
    late: bool


def judge(records: list[TurnRecord], arrivals: list[Arrival]) -> tuple[list[Verdict], int]:
    """Each turn's verdict, and the device messages no turn had set out to send."""
    starts = [r.start for r in records]
    got: list[list[Arrival]] = [[] for _ in records]
    strays = 0
    for a in sorted(arrivals, key=lambda a: a.at):
        in_window = bisect.bisect_right(starts, a.at) - 1
        owner = next((k for k in range(in_window, -1, -1) if records[k].intended.get(a.topic) == a.payload), None)
        if owner is None:
            strays += 1
        else:
            got[owner].append(a)
    ends = starts[1:] + [float("inf")]
    return [verdict(r, g, end) for r, g, end in zip(records, got, ends)], strays


def verdict(r: TurnRecord, got: list[Arrival], window_end: float) -> Verdict:
    gave_up = r.failed_at if r.failed_at is not None else float("inf")
    late = any(a.at >= min(window_end, gave_up) for a in got)
    copies = Counter(a.topic for a in got)
    duplicate = any(n > 1 for n in copies.values())
    if r.hung:
        outcome = "hung"
    elif r.failed_at is not None:
        outcome = "failed"
    elif not r.intended:
        outcome = "nothing sent"
    else:
        outcome = "delivered" if set(copies) == set(r.intended) else "lost"
    return Verdict(outcome, duplicate, late)


def report(records: list[TurnRecord], final: TurnRecord, arrivals: list[Arrival], faults: Faults,
           rss: list[tuple[int, float]], wall_s: float, command_timeout_s: float) -> dict:
    verdicts, strays = judge(records + [final], arrivals)
    *run, last = verdicts
    count = lambda outcome: sum(v.outcome == outcome and not v.duplicate and not v.late for v in run)  # noqa: E731
    half = len(records) / 2
    data = {
        "turns": len(records), "delivered_once": count("delivered"), "answered_failed": count("failed"),
        "lost": count("lost"), "duplicates": sum(v.duplicate for v in run), "late": sum(v.late for v in run),
        "misheard": sum(r.misheard for r in records), "nothing_sent": count("nothing sent"),
        "hung": sum(r.hung for r in records), "other_errors": sum(len(r.errors) for r in records),
        "strays": strays, "faults": {k: faults.injected[k] for k in FAULTS},
        "rss_mb": {"start": rss[0][1], "end": rss[-1][1],
                   "slope_per_1000_turns": slope_per_1000([p for p in rss if p[0] >= half]),
                   "between_turns": rss},  # a turn's own working memory comes and goes within it
        "still_answering": last.outcome == "delivered" and not last.duplicate and not last.late,
        "wall_s": wall_s, "command_timeout_s": command_timeout_s,
        "misheard_as": Counter(f"{r.sample.text} -> {r.heard}" for r in records if r.misheard),
        "not_delivered": [{"turn": i, "fault": faults.planned.get(i), "voice": r.sample.voice, "text": r.sample.text,
                           "heard": r.heard, **asdict(v)}
                          for i, (r, v) in enumerate(zip(records, run)) if v != Verdict("delivered", False, False)],
    }
    data["passed"] = (data["still_answering"] and not data["duplicates"] and not data["late"]
                      and not data["hung"] and not data["other_errors"])
    data["text"] = _text(data)
    return data


def _text(d: dict) -> str:
    r = d["rss_mb"]
    slope = "n/a" if r["slope_per_1000_turns"] is None else f"{r['slope_per_1000_turns']:+.1f} MB per 1000 turns"
    rows = [("turns", d["turns"]), ("delivered once", d["delivered_once"]),
            ("answered as failed", d["answered_failed"]), ("duplicates", d["duplicates"]),
            ("late", d["late"]), ("misheard (not the box's fault)", d["misheard"]),
            ("  of which nothing sent", d["nothing_sent"]), ("lost (acknowledged, never seen)", d["lost"]),
            ("messages no turn sent", d["strays"]), ("hung turns", d["hung"]), ("other errors", d["other_errors"]),
            ("faults injected", ", ".join(f"{k} {n}" for k, n in d["faults"].items())),
            ("RSS start / end", f"{r['start']:.0f} MB / {r['end']:.0f} MB"),
            ("RSS slope (second half)", slope),
            ("still answering", "yes" if d["still_answering"] else "NO"),
            ("wall time", f"{d['wall_s']:.0f} s"), ("result", "PASS" if d["passed"] else "FAIL")]
    lines = [f"soak: templates only, command timeout {d['command_timeout_s']} s; late = after the next turn "
             f"began or after the box answered it as failed", ""]
    lines += [f"  {name:34} {value}" for name, value in rows]
    lines += [f"  misheard: {text} ({n}x)" for text, n in d["misheard_as"].items()]
    return "\n".join(lines)

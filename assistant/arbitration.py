"""Several boxes, one answer: boxes on one broker that hear the same wake word agree on the one that heard
it best, and only that one answers; the others go back to listening without a sound.

On a wake word a box publishes a claim on `<prefix>/arbitration/claim`: its site, an id for this wake,
and how well it heard it, as one number (`rank`, below). It weighs its own claim against those of the
other boxes that arrived within `arbitration.window_ms` of its own wake word, before or after it; the
best claim wins, every box deciding alike from the same claims. A box knows the others from their
availability topics (`<prefix>/<site>/availability`, retained, `offline` as the last will): it decides at
once when no other box is online, or as soon as every online box has claimed and its own claim is the
best; otherwise when the window ends, with the claims of the boxes still online then. So a box that goes
away mid-window, or never claims, holds up the others for the window at most. Without a broker, a box
answers.

The conductor takes in the command meanwhile, so the box that answers loses no audio and, as a command
lasts longer than the window, no time.

Claims come from anyone on the broker: each is checked (size, JSON, types, ranges) and kept only from a
box that is online, one per box, for at most `MAX_PEERS` boxes; the rest is dropped and counted in the
link's rejections. Receiving one costs microseconds on the MQTT thread and wakes a waiting decision at
most once per turn of the event loop, and a decision waits the window at most: a flood cannot delay a
turn or keep a box from deciding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .config import Config
from .mqtt_topics import topic_problem

log = logging.getLogger(__name__)

MAX_CLAIM_BYTES = 512  # a claim is under 150 bytes; anything longer is not one
MAX_PEERS = 64  # other boxes followed on the broker; announcements of more are dropped
MAX_SITE_CHARS = 64
MAX_ID_CHARS = 32
LEVEL_FLOOR_DB = -120.0  # the level of digital silence, so that every rank is a finite number


def claim_topic(cfg: Config) -> str:
    return f"{cfg.mqtt.topic_prefix}/arbitration/claim"


def availability_filter(cfg: Config) -> str:
    return f"{cfg.mqtt.topic_prefix}/+/availability"


def rank(score: float, level_db: float) -> float:
    """How well a box heard the wake word, in dB: the speech level weighted by the wake word's score,
    20·log10(score × RMS). The level decides between boxes that are sure of the word (a score of 0.95
    against 0.98 is 0.3 dB); a doubtful score (0.5) costs 6 dB. Rounded as published, so that every box
    compares the same numbers."""
    level_db = level_db if math.isfinite(level_db) else LEVEL_FLOOR_DB
    score = score if math.isfinite(score) else 0.0
    return round(max(level_db, LEVEL_FLOOR_DB) + 20 * math.log10(min(max(score, 1e-3), 1.0)), 2)


def level_db(energies) -> float:
    """The speech level of the wake word, in dBFS, from the mean squares of the last frames before it
    fired: the RMS of their louder half, so that where the word lies among them does not matter."""
    e = sorted(energies, reverse=True)[:max(1, (len(energies) + 1) // 2)]
    mean = float(np.mean(e)) if e else 0.0
    return round(max(LEVEL_FLOOR_DB, 10 * math.log10(mean / 32768 ** 2)) if mean > 0 else LEVEL_FLOOR_DB, 1)


@dataclass(frozen=True)
class Claim:
    site: str
    id: str  # new for every wake word: a box tells its own claims by it
    rank: float  # dB, see rank(): higher heard it better
    score: float = 0.0  # the wake word's score, 0..1
    level_db: float = LEVEL_FLOOR_DB  # the speech level, dBFS
    received: float = field(default=0.0, compare=False)  # monotonic: when this box made or took it in

    def payload(self) -> str:
        return json.dumps({"site": self.site, "id": self.id, "rank": self.rank, "score": self.score,
                           "level_db": self.level_db})

    def order(self) -> tuple:
        """The best claim sorts first: the highest rank; at equal rank the site first in alphabetical
        order, then the id (two boxes given one site), so that every box picks the same winner."""
        return (-self.rank, self.site, self.id)


def parse_claim(payload: str, received: float = 0.0) -> Claim | str:
    """The claim in a message, or why it is not one."""
    if len(payload) > MAX_CLAIM_BYTES:
        return f"claim longer than {MAX_CLAIM_BYTES} bytes"
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return "claim not JSON"
    if not isinstance(body, dict):
        return "claim not a JSON object"
    site, cid = body.get("site"), body.get("id")
    if not isinstance(site, str) or not 0 < len(site) <= MAX_SITE_CHARS or "/" in site \
            or topic_problem(site, part=True):
        return "claim without a usable site"
    if not isinstance(cid, str) or not 0 < len(cid) <= MAX_ID_CHARS:
        return "claim without a usable id"
    numbers = {}
    for key, low, high in (("rank", -200.0, 50.0), ("score", 0.0, 1.0), ("level_db", -200.0, 0.0)):
        v = body.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
            return f"claim {key} not a number from {low:g} to {high:g}"
        numbers[key] = float(v)
    return Claim(site, cid, numbers["rank"], numbers["score"], numbers["level_db"], received)


@dataclass
class Decision:
    won: bool
    own: Claim
    winner: Claim
    rivals: list[Claim]  # the other boxes' claims weighed
    waited_s: float  # from the wake word to the decision
    why: str  # off | no broker | alone | all claimed | window

    def summary(self) -> dict:
        return {"won": self.won, "winner": self.winner.site, "rank": self.own.rank, "winner_rank": self.winner.rank,
                "boxes": 1 + len(self.rivals), "waited_ms": round(self.waited_s * 1000, 1), "why": self.why}


class Arbiter:
    """This box's side of the agreement: its claims, and the claims and availability of the others."""

    def __init__(self, cfg: Config, link):
        self.link = link
        self.enabled = cfg.arbitration.enabled and link is not None
        self.site = cfg.site
        self.window_s = cfg.arbitration.window_ms / 1000
        self.topic = claim_topic(cfg)
        self.prefix = cfg.mqtt.topic_prefix
        self._lock = threading.Lock()
        self._online: set[str] = set()  # the other boxes whose availability says online
        self._claims: dict[str, Claim] = {}  # the latest claim of each online box
        self._own_ids: deque[str] = deque(maxlen=32)
        self._waiting: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._poked = False  # a wake-up for the waiting decision is already on its way
        if self.enabled:
            link.subscribe(self.topic, self._on_claim, fresh_only=True)  # a retained claim is an old one
            link.subscribe(availability_filter(cfg), self._on_availability)

    def _drop(self, topic: str, reason: str) -> None:
        self.link.rejected.add(topic, reason)

    # -- on the MQTT thread -----------------------------------------------------------------------------

    def _on_availability(self, topic: str, payload: str) -> None:
        site = topic[len(self.prefix) + 1:-len("/availability")]  # the filter's one level
        if site == self.site:
            return
        state = payload.strip()
        if state not in ("online", "offline", ""):  # empty: the retained message was removed
            self._drop(topic, "availability not online or offline")
            return
        with self._lock:
            if state == "online":
                if site not in self._online and len(self._online) >= MAX_PEERS:
                    full = True
                else:
                    full = False
                    self._online.add(site)
            else:
                full = False
                self._online.discard(site)
                self._claims.pop(site, None)
        if full:
            self._drop(topic, f"more than {MAX_PEERS} other boxes online")
            return
        self._poke()  # a box that went away may have been the one waited for

    def _on_claim(self, topic: str, payload: str) -> None:
        claim = parse_claim(payload, time.monotonic())
        if isinstance(claim, str):
            self._drop(topic, claim)
            return
        with self._lock:
            if claim.id in self._own_ids:
                return
            if claim.site == self.site:
                reason = f"claim from another box with this box's site {self.site!r}: give each box its own site"
            elif claim.site not in self._online:
                reason = "claim from a box that is not online"
            else:
                reason = ""
                self._claims[claim.site] = claim
        if reason:
            self._drop(topic, reason)
            return
        self._poke()

    def _poke(self) -> None:
        """Wake the decision waiting on the event loop, once however many messages arrive meanwhile."""
        waiting = self._waiting
        if waiting is None or self._poked:
            return
        self._poked = True
        loop, event = waiting
        try:
            loop.call_soon_threadsafe(self._poked_now, event)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    def _poked_now(self, event: asyncio.Event) -> None:
        self._poked = False
        event.set()

    # -- on the event loop ------------------------------------------------------------------------------

    def peers(self) -> set[str]:
        with self._lock:
            return set(self._online)

    def _rivals(self, own: Claim) -> tuple[list[Claim], int]:
        """The claims of online boxes taken in within the window of our own, and how many boxes are online."""
        with self._lock:
            rivals = [c for c in self._claims.values() if abs(c.received - own.received) <= self.window_s]
            return rivals, len(self._online)

    async def agree(self, score: float, level: float) -> Decision:
        """Claim this wake word and wait, at most the window, until it is clear which box answers. Never
        raises: should anything fail, this box answers."""
        t0 = time.monotonic()
        own = Claim(self.site, uuid.uuid4().hex[:12], rank(score, level), round(score, 3), round(level, 1), t0)
        try:
            return await self._agree(own)
        except Exception:  # noqa: BLE001 - a box that cannot agree answers, as one without a broker does
            log.exception("could not agree with the other boxes on who answers; answering")
            return Decision(True, own, own, [], time.monotonic() - t0, "error")

    async def _agree(self, own: Claim) -> Decision:
        t0 = own.received
        if not self.enabled:
            return Decision(True, own, own, [], 0.0, "off")
        if not self.link.connected:
            return Decision(True, own, own, [], time.monotonic() - t0, "no broker")
        event = asyncio.Event()
        with self._lock:
            self._own_ids.append(own.id)
        self._waiting, self._poked = (asyncio.get_running_loop(), event), False
        try:
            self.link.publish_nowait(self.topic, own.payload())
            deadline = t0 + self.window_s
            while True:
                rivals, online = self._rivals(own)
                best = min([own, *rivals], key=Claim.order)
                now = time.monotonic()
                if best is own and len(rivals) >= online:
                    return Decision(True, own, own, rivals, now - t0, "all claimed" if online else "alone")
                if now >= deadline:
                    return Decision(best is own, own, best, rivals, now - t0, "window")
                event.clear()
                try:  # not wait_for: on Python 3.11 it loses a cancel that comes as a rival's claim does
                    async with asyncio.timeout(deadline - now):
                        await event.wait()
                except TimeoutError:
                    pass
        finally:
            self._waiting = None

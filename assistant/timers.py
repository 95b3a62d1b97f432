"""Kitchen timers, all on the box: several at once, named or not, paused, lengthened, and remembered in
the state directory so they survive a restart (one that ends while the box is off rings when it is back).

Times are wall-clock seconds, the only clock that means the same before and after a restart. A finished
timer rings: `take` hands the conductor a ("ring", timer) request when one is due, between turns, every
`RING_EVERY_S` until someone stops it or `RING_TIMEOUT_S` passes. Every change is an event
(`Kind.TIMER`), which Presence publishes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .events import EventBus, Kind
from .state import StateFile

RING_EVERY_S = 5.0  # a ringing timer is said again this often
RING_TIMEOUT_S = 300.0  # and gives up after this long, in case nobody is home


@dataclass
class Timer:
    id: str
    name: str  # as said ("pizza"), or "" for an unnamed one
    duration_s: int  # as set, plus what was added or taken away
    ends_at: float  # wall clock; while paused, the time left is kept in `left_s` instead
    left_s: float | None = None  # paused with this much left
    ringing_since: float | None = None
    next_ring_at: float | None = None

    @property
    def state(self) -> str:
        return "ringing" if self.ringing_since is not None else "paused" if self.left_s is not None else "running"

    @property
    def label(self) -> str:
        """How it is called out loud: "pizza timer", or "5 minute timer" when it has no name."""
        return f"{self.name} timer" if self.name else f"{spoken_duration(self.duration_s, unit_form=True)} timer"


def spoken_duration(seconds: float, unit_form: bool = False) -> str:
    """3725 -> "1 hour, 2 minutes and 5 seconds"; `unit_form`: "5 minute" as in "a 5 minute timer"."""
    s = max(0, round(seconds))
    parts = [(n, unit) for n, unit in ((s // 3600, "hour"), (s % 3600 // 60, "minute"), (s % 60, "second")) if n]
    if not parts:
        return "0 seconds"
    words = [f"{n} {unit}" if unit_form or n == 1 else f"{n} {unit}s" for n, unit in parts]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class Timers:
    def __init__(self, state_dir: Path, events: EventBus, clock: Callable[[], float] = time.time):
        self.file = StateFile(Path(state_dir) / "timers.json")
        self.events = events
        self.clock = clock
        self.lock = threading.Lock()  # planned on a worker thread, rung from the event loop
        self.timers: dict[str, Timer] = {t["id"]: Timer(**t) for t in self.file.load([])}
        for t in self.ringing():  # it rang when the box stopped: it rings on at once
            t.next_ring_at = self.clock()

    # -- reading --------------------------------------------------------------------------------------

    def remaining(self, t: Timer) -> float:
        if t.left_s is not None:
            return t.left_s
        return max(0.0, t.ends_at - self.clock())

    def active(self) -> list[Timer]:
        """Running and paused timers, the one that ends first first."""
        return sorted((t for t in self.timers.values() if t.state != "ringing"), key=self.remaining)

    def ringing(self) -> list[Timer]:
        return [t for t in self.timers.values() if t.state == "ringing"]

    def find(self, name: str = "", duration_s: int | None = None) -> list[Timer]:
        """The active timers called `name`, or set for `duration_s`; all of them when neither is given."""
        return [t for t in self.active() if (not name or t.name == name.lower())
                and (duration_s is None or t.duration_s == duration_s)]

    # -- changing -------------------------------------------------------------------------------------

    def start(self, duration_s: int, name: str = "") -> Timer:
        t = Timer(uuid.uuid4().hex[:8], name.lower(), duration_s, self.clock() + duration_s)
        self._changed("started", t, add=True)
        return t

    def cancel(self, t: Timer) -> None:
        self._changed("cancelled", t, remove=True)

    def pause(self, t: Timer) -> None:
        if t.left_s is None:
            t.left_s = self.remaining(t)
            self._changed("updated", t)

    def resume(self, t: Timer) -> None:
        if t.left_s is not None:
            t.ends_at, t.left_s = self.clock() + t.left_s, None
            self._changed("updated", t)

    def add(self, t: Timer, seconds: int) -> None:
        """Lengthens (or, negative, shortens) a timer; shortened past its end it ends now."""
        t.duration_s = max(1, t.duration_s + seconds)
        if t.left_s is not None:
            t.left_s = max(0.0, t.left_s + seconds)
        else:
            t.ends_at = max(self.clock(), t.ends_at + seconds)
        self._changed("updated", t)

    def stop_ringing(self) -> list[Timer]:
        stopped = self.ringing()
        for t in stopped:
            self._changed("cancelled", t, remove=True)
        return stopped

    def take(self) -> list[tuple[str, Timer]]:
        """The rings due now, as requests for the conductor: timers that just ended, and ringing ones
        whose next ring is due; a timer that rang for `RING_TIMEOUT_S` is given up on."""
        now, due = self.clock(), []
        for t in list(self.timers.values()):
            if t.state == "running" and t.ends_at <= now:
                t.ringing_since = t.next_ring_at = now
                self._changed("finished", t)
            if t.state != "ringing" or t.next_ring_at > now:
                continue
            if now - t.ringing_since > RING_TIMEOUT_S:
                self._changed("cancelled", t, remove=True)
                continue
            t.next_ring_at = now + RING_EVERY_S
            due.append(("ring", t))
        return due

    def _changed(self, event: str, t: Timer, add: bool = False, remove: bool = False) -> None:
        with self.lock:
            if add:
                self.timers[t.id] = t
            if remove:
                self.timers.pop(t.id, None)
            self.file.save([dataclasses.asdict(x) for x in self.timers.values()])
        self.events.emit(Kind.TIMER, event=event, timer=self.describe(t), timers=self.summary())

    # -- telling --------------------------------------------------------------------------------------

    def describe(self, t: Timer) -> dict:
        return {"id": t.id, "name": t.name, "label": t.label, "state": t.state, "duration_s": t.duration_s,
                "remaining_s": round(self.remaining(t)), "ends_at": round(t.ends_at) if t.state == "running" else None}

    def summary(self) -> dict:
        """All timers, the next to end first: Home Assistant's timer sensor shows this."""
        timers = [self.describe(t) for t in self.ringing() + self.active()]
        return {"count": len(timers), "next": timers[0] if timers else None, "timers": timers}

    def summary_now(self) -> dict:
        """summary() from another thread: the MQTT thread's announcement after a (re)connect."""
        with self.lock:
            return self.summary()

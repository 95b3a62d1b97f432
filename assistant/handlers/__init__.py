"""Intent handlers: what carrying out an intent means, chosen by the intent.

Each handler says which intents it takes and plans an intent into an `Outcome` (device commands and a
reply); the turn delivers the commands. A new kind of request (timers, the clock, volume) is a new file
here, listed in `for_home`, not a branch in the conductor.
"""

from __future__ import annotations

from typing import Protocol

from ..config import state_dir
from ..types import Intent, Outcome
from .clock import ClockHandler
from .custom import CustomHandler
from .devices import DeviceHandler
from .timers import TimerHandler
from .volume import VolumeHandler


class Handler(Protocol):
    def handles(self, intent: Intent) -> bool: ...

    def plan(self, intent: Intent) -> Outcome: ...


class Handlers:
    """The first handler that takes an intent plans it."""

    def __init__(self, handlers: list[Handler]):
        self.handlers = handlers

    def plan(self, intent: Intent) -> Outcome:
        for h in self.handlers:
            if h.handles(intent):
                return h.plan(intent)
        return Outcome("Sorry, I can't do that yet.", ok=False, intent=intent)


def for_home(cfg, home, custom, timers, player) -> Handlers:
    """The handlers of a home: the user's own intents, the box's own things (timers, the clock, its
    volume), then the devices (which take every other intent)."""
    return Handlers([CustomHandler(custom, cfg), TimerHandler(timers), ClockHandler(cfg.time_zone),
                     VolumeHandler(player, state_dir(cfg)), DeviceHandler(home)])

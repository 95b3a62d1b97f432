"""Lights, switches and the other devices of the home: commands in each device's own MQTT dialect, and
answers about their state (home/actions.py)."""

from __future__ import annotations

from ..home.actions import plan
from ..home.live import Home
from ..types import Intent, Outcome


class DeviceHandler:
    def __init__(self, home: Home):
        self.home = home

    def handles(self, intent: Intent) -> bool:
        return True  # every intent no other handler took is about the devices

    def plan(self, intent: Intent) -> Outcome:
        return plan(intent, self.home.registry, self.home.states)

"""Timers (Home Assistant's timer sentences) and "stop" / "never mind": a ringing timer is stopped, and
with nothing ringing the turn ends quietly. The reply is worked out when planning; the change to the
timers happens only when the turn carries the outcome out (`Outcome.effect`)."""

from __future__ import annotations

from ..timers import Timer, Timers, spoken_duration
from ..types import Intent, Outcome

TIMER_INTENTS = ("HassStartTimer", "HassCancelTimer", "HassCancelAllTimers", "HassPauseTimer", "HassUnpauseTimer",
                 "HassIncreaseTimer", "HassDecreaseTimer", "HassTimerStatus")
NO_TIMERS = "There are no timers running."


def seconds_in(slots: dict, prefix: str = "") -> int | None:
    """hours/minutes/seconds slots (or start_hours... for the timer as it was set) as seconds."""
    parts = [(slots.get(f"{prefix}{unit}"), factor) for unit, factor in (("hours", 3600), ("minutes", 60), ("seconds", 1))]
    if all(v is None for v, _ in parts):
        return None
    return round(sum(float(v) * f for v, f in parts if v is not None))


def names(timers: list[Timer]) -> str:
    labels = [t.label for t in timers]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


class TimerHandler:
    def __init__(self, timers: Timers):
        self.timers = timers

    def handles(self, intent: Intent) -> bool:
        return intent.name in TIMER_INTENTS or intent.name == "HassNevermind"

    def plan(self, intent: Intent) -> Outcome:
        if intent.name == "HassNevermind":
            return self._stop(intent)
        if intent.name == "HassStartTimer":
            return self._start(intent)
        if intent.name == "HassCancelTimer" and self.timers.ringing():  # "stop the timer" while it rings
            return self._stop(intent)
        if intent.name == "HassCancelAllTimers":
            return self._cancel_all(intent)
        chosen = self._chosen(intent)
        if isinstance(chosen, Outcome):
            return chosen
        if intent.name == "HassTimerStatus":
            return Outcome(" ".join(self._left(t) for t in chosen), intent=intent)
        if len(chosen) > 1:
            return Outcome(f"Which one? There are the {names(chosen)}.", ok=False, intent=intent)
        return self._change(intent, chosen[0])

    def _start(self, intent: Intent) -> Outcome:
        seconds, name = seconds_in(intent.slots), str(intent.slots.get("name") or "").strip()
        if not seconds:
            return Outcome("For how long?", ok=False, intent=intent)
        label = f"{name.capitalize()} timer" if name else "Timer"
        return Outcome(f"{label}, {spoken_duration(seconds)}, started.", intent=intent,
                       effect=lambda: self.timers.start(seconds, name))

    def _stop(self, intent: Intent) -> Outcome:
        """Stops what rings; said with nothing ringing (and no question pending) it is just a quiet end."""
        return Outcome("", intent=intent, effect=self.timers.stop_ringing if self.timers.ringing() else None)

    def _cancel_all(self, intent: Intent) -> Outcome:
        active = self.timers.find()
        if not active:
            return Outcome(NO_TIMERS, ok=False, intent=intent)

        def cancel_all() -> None:
            for t in active:
                self.timers.cancel(t)
        return Outcome("All timers cancelled." if len(active) > 1 else f"{active[0].label.capitalize()} cancelled.",
                       intent=intent, effect=cancel_all)

    def _chosen(self, intent: Intent) -> list[Timer] | Outcome:
        """The timers the sentence is about (by name, or by the time it was set for), or why there are none."""
        name = str(intent.slots.get("name") or "").strip()
        found = self.timers.find(name, seconds_in(intent.slots, "start_"))
        if found:
            return found
        if not self.timers.find():
            return Outcome(NO_TIMERS, ok=False, intent=intent)
        return Outcome(f"There is no {name + ' ' if name else 'such '}timer.", ok=False, intent=intent)

    def _left(self, t: Timer) -> str:
        left = spoken_duration(self.timers.remaining(t))
        paused = ", paused" if t.state == "paused" else ""
        return f"The {t.label} has {left} left{paused}."

    def _change(self, intent: Intent, t: Timer) -> Outcome:
        label = t.label.capitalize()
        if intent.name == "HassCancelTimer":
            return Outcome(f"{label} cancelled.", intent=intent, effect=lambda: self.timers.cancel(t))
        if intent.name == "HassPauseTimer":
            return Outcome(f"{label} paused.", intent=intent, effect=lambda: self.timers.pause(t))
        if intent.name == "HassUnpauseTimer":
            return Outcome(f"{label} resumed.", intent=intent, effect=lambda: self.timers.resume(t))
        change = seconds_in(intent.slots) or 0
        if intent.name == "HassDecreaseTimer":
            change = -change
        verb = "added to" if change > 0 else "taken off"
        return Outcome(f"{spoken_duration(abs(change)).capitalize()} {verb} the {t.label}.", intent=intent,
                       effect=lambda: self.timers.add(t, change))

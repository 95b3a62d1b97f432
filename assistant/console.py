"""Prints what the assistant hears and does, one line per event."""

from __future__ import annotations

import sys

from .events import Event, Kind


def printer(out=sys.stdout):
    def show(ev: Event) -> None:
        d = ev.data
        line = {
            Kind.WAKE: lambda: f"wake      {d['word']}, score {d['score']} at {d['at_s']} s",
            Kind.ARBITRATION: lambda: None if d["won"] else (
                f"not mine  {d['winner']} heard it better ({d['winner_rank']} dB against {d['rank']} dB)"),
            Kind.TRANSCRIPT: lambda: f"heard     {d['text']!r}",
            Kind.INTENT: lambda: f"intent    {d['intent'].name} {_target(d['intent'])}",
            Kind.COMMAND: lambda: f"mqtt ->   {d['topic']} {d['payload']}",
            Kind.REPLY: lambda: f"reply     {d['text']}",
            Kind.ERROR: lambda: f"problem   {d['message']}",
        }.get(ev.kind)
        if line and (text := line()) is not None:
            print(text, file=out, flush=True)

    return show


def _target(intent) -> str:
    if intent.unknown_name:
        return f"(unknown: {intent.unknown_name})"
    parts = list(intent.device_ids) or ([f"area={intent.area}"] if intent.area else ["all"])
    if intent.brightness is not None:
        parts.append(f"brightness={intent.brightness}%")
    if intent.color:
        parts.append(f"color={intent.color}")
    return " ".join(parts)

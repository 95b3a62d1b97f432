"""An Intent becomes device commands and a reply. Unknown targets get a reply and no command."""

from __future__ import annotations

from ..types import Intent, Outcome
from . import dialects
from .registry import Device, Registry


def plan(intent: Intent, registry: Registry) -> Outcome:
    if intent.unknown_name:
        return Outcome(f"I don't know any device called {intent.unknown_name}.", ok=False, intent=intent)
    devices, what = _targets(intent, registry)
    if not devices:
        return Outcome(f"There are no {what}.", ok=False, intent=intent)
    if intent.name == "HassTurnOn":
        cmds = [dialects.command(d, state="ON") for d in devices]
        reply = f"Turned on {what}."
    elif intent.name == "HassTurnOff":
        cmds = [dialects.command(d, state="OFF") for d in devices]
        reply = f"Turned off {what}."
    elif intent.name == "HassLightSet" and intent.color:
        devices = [d for d in devices if d.color]
        if not devices:
            return Outcome(f"{what.capitalize()} cannot change colour.", ok=False, intent=intent)
        cmds = [dialects.command(d, color=intent.color) for d in devices]
        reply = f"Set {what} to {intent.color}."
    elif intent.name == "HassLightSet" and intent.brightness is not None:
        cmds = [dialects.command(d, brightness=intent.brightness) for d in devices]
        reply = f"Set {what} to {intent.brightness} percent."
    else:
        return Outcome("Sorry, I can't do that yet.", ok=False, intent=intent)
    return Outcome(reply, tuple(cmds), ok=True, intent=intent)


def _targets(intent: Intent, registry: Registry) -> tuple[list[Device], str]:
    noun = "lights" if intent.domain == "light" else f"{intent.domain}s"
    if intent.device_ids:
        devices = [d for i in intent.device_ids if (d := registry.get(i)) is not None]
        return devices, " and ".join(f"the {d.name}" for d in devices)
    if intent.area:
        devices = registry.in_area(intent.area, intent.domain)
        return devices, f"the {intent.area} {noun}" if len(devices) != 1 else f"the {devices[0].name}"
    if intent.all_devices:
        return registry.of_domain(intent.domain), f"all the {noun}"
    return [], noun

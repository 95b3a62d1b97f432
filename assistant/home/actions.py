"""An Intent becomes device commands and a reply. Unknown targets, offline devices and questions get a
reply and no command."""

from __future__ import annotations

from ..types import Intent, Outcome
from . import dialects
from .registry import Device, Registry
from .state import DeviceState, HomeState

STEP = 25  # percent, for "brighter" and "dimmer"
NO_NAME = {"the", "a", "an", "my", "this", "that"}  # all a command cut short ("turn on the") may name


def plan(intent: Intent, registry: Registry, states: HomeState | None = None) -> Outcome:
    if intent.unknown_name:
        if not set(intent.unknown_name.lower().split()) - NO_NAME:
            return Outcome("Say which device or room you mean.", ok=False, intent=intent)
        return Outcome(f"I don't know any device called {intent.unknown_name}.", ok=False, intent=intent)
    state = states.get if states else (lambda _id: DeviceState())
    devices, what = targets(intent, registry)
    if not devices:  # "There are no lights in the hall." (the box's own area may have none)
        where = f" in the {intent.area}" if intent.area and not intent.device_ids else ""
        return Outcome(f"There are no {_noun(intent)}{where}.", ok=False, intent=intent)
    if intent.name == "HassGetState":
        return _answer(intent, devices, what, state)
    offline = [d for d in devices if state(d.id).available is False]
    if offline and len(offline) == len(devices):
        names = " and ".join(f"the {d.name}" for d in offline)
        return Outcome(f"Sorry, {names} {'is' if len(offline) == 1 else 'are'} offline, so I could not "
                       f"switch {'it' if len(offline) == 1 else 'them'}.", ok=False, intent=intent)
    devices = [d for d in devices if d not in offline]
    note = f" The {' and the '.join(d.name for d in offline)} {'is' if len(offline) == 1 else 'are'} offline." \
        if offline else ""
    if intent.name == "HassTurnOn":
        cmds = _grouped(devices, registry, intent, state="ON")
        reply = f"Turned on {what}."
    elif intent.name == "HassTurnOff":
        cmds = _grouped(devices, registry, intent, state="OFF")
        reply = f"Turned off {what}."
    elif intent.name == "HassToggle":
        # Toggle from known state, so the reply can say what happened; unknown state: the device decides.
        cmds = [dialects.command(d, state={True: "OFF", False: "ON", None: "TOGGLE"}[state(d.id).on])
                for d in devices]
        reply = f"Toggled {what}."
    elif intent.name in ("AssistantBrighter", "AssistantDimmer"):
        sign = 1 if intent.name == "AssistantBrighter" else -1
        cmds = []
        for d in devices:
            s = state(d.id)
            now = (s.brightness if s.brightness is not None else 100) if s.on else 0
            cmds.append(dialects.command(d, brightness=max(0 if sign < 0 else 1, min(100, now + sign * STEP))))
        reply = f"Made {what} {'brighter' if sign > 0 else 'dimmer'}."
    elif intent.name == "HassLightSet" and intent.color:
        devices = [d for d in devices if d.color]
        if not devices:
            return Outcome(f"{what.capitalize()} cannot change colour.", ok=False, intent=intent)
        cmds = [dialects.command(d, color=intent.color) for d in devices]
        reply = f"Set {what} to {intent.color}."
    elif intent.name == "HassLightSet" and intent.brightness is not None:
        cmds = _grouped(devices, registry, intent, brightness=intent.brightness)
        reply = f"Set {what} to {intent.brightness} percent."
    else:
        return Outcome("Sorry, I can't do that yet.", ok=False, intent=intent)
    return Outcome(reply + note, tuple(cmds), ok=True, intent=intent)


def as_command(intent: Intent, registry: Registry) -> str:
    """The intent said back as a command ("turn on the front door"), for asking before acting on words
    that are not the home's own sentence (the LLM's reading of a free request)."""
    _, what = targets(intent, registry)
    if intent.name == "HassTurnOn":
        return f"turn on {what}"
    if intent.name == "HassTurnOff":
        return f"turn off {what}"
    if intent.name == "HassLightSet" and intent.color:
        return f"make {what} {intent.color}"
    if intent.name == "HassLightSet" and intent.brightness is not None:
        return f"set {what} to {intent.brightness} percent"
    return intent.text


def _answer(intent: Intent, devices: list[Device], what: str, state) -> Outcome:
    """'is the kitchen light on?' (one device) or 'which lights are on?' (several)."""
    want_on = intent.slots.get("state", "on") != "off"
    if len(devices) == 1 and intent.device_ids:
        d, s = devices[0], state(devices[0].id)
        if s.available is False:
            return Outcome(f"The {d.name} is offline.", intent=intent)
        if s.on is None:
            return Outcome(f"I don't know whether the {d.name} is on.", intent=intent)
        level = f" at {s.brightness} percent" if s.on and s.brightness is not None and s.brightness < 100 else ""
        return Outcome(f"{'Yes' if s.on == want_on else 'No'}, the {d.name} is {'on' if s.on else 'off'}{level}.",
                       intent=intent)
    match = [d for d in devices if state(d.id).on is want_on]
    word = "on" if want_on else "off"
    if not match:
        return Outcome(f"None of {what} {'is' if len(devices) == 1 else 'are'} {word}.", intent=intent)
    names = [f"the {d.name}" for d in match]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return Outcome(f"{listed[0].upper() + listed[1:]} {'is' if len(match) == 1 else 'are'} {word}.", intent=intent)


def _grouped(devices: list[Device], registry: Registry, intent: Intent, **change):
    """One command per device, except that a Zigbee2MQTT group whose members are all among the targets
    (an area or all lights) is told once instead of each member."""
    left = {d.id: d for d in devices}
    cmds = []
    if not intent.device_ids:
        for g in sorted(registry.groups(), key=lambda g: -len(g.members)):
            if len(g.members) > 1 and all(m in left for m in g.members):
                cmds.append(dialects.command(g, **change))
                for m in g.members:
                    del left[m]
    return cmds + [dialects.command(d, **change) for d in left.values()]


def _noun(intent: Intent) -> str:
    return "lights" if intent.domain == "light" else f"{intent.domain}s"


def targets(intent: Intent, registry: Registry) -> tuple[list[Device], str]:
    """The devices an intent acts on, and how to say them."""
    noun = _noun(intent)
    if intent.device_ids:
        devices = [d for i in intent.device_ids if (d := registry.get(i)) is not None]
        return devices, " and ".join(f"the {d.name}" for d in devices)
    if intent.area:
        devices = registry.in_area(intent.area, intent.domain)
        return devices, f"the {intent.area} {noun}" if len(devices) != 1 else f"the {devices[0].name}"
    if intent.all_devices:
        return registry.of_domain(intent.domain), f"all the {noun}"
    return [], noun

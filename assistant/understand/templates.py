"""Sentence templates: Home Assistant's own English sentences (home-assistant-intents) matched by hassil
against this home's device and area names."""

from __future__ import annotations

import dataclasses
import logging
import re

from hassil import Intents, TextSlotList, recognize_best
from hassil.intents import Intent as HassilIntent
from home_assistant_intents import get_intents

from ..home.registry import Registry, normalize
from ..types import Intent, Source
from .fuzzy import VocabularySnap
from .grammar import FILLER
from .paths import GrammarGraph

log = logging.getLogger(__name__)

# The box's own intents: about itself (timers, the time, its volume), not about a device of the home.
BOX = ("HassStartTimer", "HassCancelTimer", "HassCancelAllTimers", "HassPauseTimer", "HassUnpauseTimer",
       "HassIncreaseTimer", "HassDecreaseTimer", "HassTimerStatus", "HassGetCurrentTime", "HassGetCurrentDate",
       "HassNevermind", "HassSetVolume", "HassSetVolumeRelative", "AssistantMute", "AssistantUnmute")
SUPPORTED = ("HassTurnOn", "HassTurnOff", "HassLightSet", *BOX)
# "turn on the kitchen like" parses as a command for an unknown device "kitchen like"; a snap this close
# to a real device is the likelier reading, a weaker one leaves the "I don't know ..." answer.
FUZZY_OVER_UNKNOWN = 0.8
NEAR = 0.5  # below this the transcript is not near any command at all: no intent

# What home-assistant-intents lacks or words differently for MQTT lights: state questions, toggle, and
# relative brightness. Same template syntax; tried before Home Assistant's sentences.
OWN = {
    "HassGetState": [
        "(is | are) [the] {name} {state}", "is [the] {name} (turned | switched) {state}",
        "(which | what) [of the] lights (are | is) {state} [in the {area}]",
        "(which | what) {area} lights (are | is) {state}",
        "(are | is) [there] any [of the] lights {state} [in the {area}]",
        "(are | is) [there] any {area} lights {state}",
    ],
    "HassToggle": ["toggle [the] {name}", "toggle [the] lights in [the] {area}", "toggle [the] {area} lights"],
    "AssistantBrighter": [
        "(make | turn) [the] {name} brighter", "brighten [the] {name}", "[turn] [the] {name} up",
        "(make | turn) [the] {area} lights brighter", "(make | turn) [the] lights in [the] {area} brighter",
    ],
    "AssistantDimmer": [
        "(make | turn) [the] {name} (dimmer | darker)", "dim [the] {name}", "[turn] [the] {name} down",
        "(make | turn) [the] {area} lights (dimmer | darker)", "(make | turn) [the] lights in [the] {area} (dimmer | darker)",
        "dim [the] lights in [the] {area}", "dim [the] {area} lights",
    ],
    # Named timers the way people say them ("set a 5 minute pizza timer"), using the package's slot lists.
    "HassStartTimer": ["<timer_set> [a|an|the|my] <timer_length> {timer_name:name} timer",
                       "<timer_set> (a|an|the|my) {timer_name:name} timer for <timer_length>"],
    "HassGetCurrentDate": ["(what|which) day is it [today]", "what's the day [today]", "what is the day [today]",
                           "what's today"],
    # "stop" ends a ringing timer; "never mind" and "cancel" otherwise end the turn quietly.
    "HassNevermind": ["stop", "cancel", "stop it", "cancel that", "forget it", "stop (the|that) (alarm|ringing|noise)",
                      "stop ringing"],
    # The box's own speaker (Home Assistant's volume sentences are for media players in an area).
    "HassSetVolume": ["(set|change|turn) [the] volume to {volume:volume_level}[([ ]%)| percent]",
                      "volume {volume:volume_level}[([ ]%)| percent]"],
    "HassSetVolumeRelative": ["[turn [the]] volume {volume_step}", "turn {volume_step} the volume",
                              "{volume_step} the volume", "turn it {volume_step}"],
    "AssistantMute": ["mute [the] (speaker|sound|volume)"],
    "AssistantUnmute": ["unmute [the] (speaker|sound|volume)"],
}
# Said to a box that stands in an area (config `area`), with no area or device named: the box's area, as
# Home Assistant's satellites give theirs. The same mechanism as Home Assistant's own "turn on the lights"
# sentences: the sentences require an `area` in the intent context, and hassil copies it into the slot.
# `HERE_OWN` is added to the sentences above, `HERE_HA` to Home Assistant's, which have "turn on the
# lights" and "set the lights to red" this way but no brightness without the word "brightness". "All the
# lights" stay the whole home's, unless "in here" is said.
HERE_OWN = {
    "AssistantBrighter": ["(make | turn) (it | [<the>] <light>) brighter [<here>]",
                          "brighten [<the>] <light> [<here>]", "[turn] [<the>] <light> up [<here>]"],
    "AssistantDimmer": ["(make | turn) (it | [<the>] <light>) (dimmer | darker) [<here>]",
                        "dim [<the>] <light> [<here>]", "[turn] [<the>] <light> down [<here>]"],
    "HassToggle": ["toggle [<the>] <light> [<here>]"],
}
HERE_HA = {
    "HassLightSet": ["[<numeric_value_set>] [<the>] <light> [<here>] [to] {brightness}[([ ]%)| percent]",
                     "dim [<the>] <light> [<here>] to {brightness}[([ ]%)| percent]"],
}
HERE_CONTEXT = {"slots": {"domain": "light"}, "requires_context": {"area": {"slot": True}}}
TIMER_LENGTH = ("({timer_hours:hours}( |-)hour[s] [[and] {timer_minutes:minutes}( |-)minute[s]] "
                "[[and] {timer_seconds:seconds}( |-)second[s]] | {timer_minutes:minutes}( |-)minute[s] "
                "[[and] {timer_seconds:seconds}( |-)second[s]] | {timer_seconds:seconds}( |-)second[s])")


def _here(sentences: list[str] | None) -> list[dict]:
    """Sentences meaning the box's own area, as a block of hassil's intent data."""
    return [{"sentences": sentences, **HERE_CONTEXT}] if sentences else []


ACCEPTED_KEPT = 50_000  # answers kept across homes (a few hundred a home), then forgotten all at once
_ACCEPTED: dict[tuple, bool] = {}  # (home, sentence) -> the templates take it as it is


def _name_alone(r, text: str) -> bool:
    """Home Assistant takes a device's name said alone ("kitchen light") as "turn it on". A name is what
    a misheard word or a word from the room most easily becomes ("office" near an office lamp), so alone
    it is no command here: the action must be said."""
    name = r.entities.get("name")
    if r.intent.name not in ("HassTurnOn", "HassTurnOff") or name is None:
        return False
    return set(text.replace(str(name.text).lower(), " ").split()) <= {"the", "please"}


_EVERYDAY: dict[str, GrammarGraph] = {}  # language -> the box's own intents as a graph (the same in every home)


def everyday(language: str, ha: Intents, own: Intents) -> GrammarGraph:
    """The box's own intents (timers, the time, the date, "stop", its volume), Home Assistant's sentences
    and ours, as one graph that the close listening searches (paths.py): they name no device, so they
    are the same in every home and are compiled once (a third of a second)."""
    if language not in _EVERYDAY:
        merged = {name: HassilIntent(name, [d for source in (ha, own) if name in source.intents
                                            for d in source.intents[name].data]) for name in BOX}
        _EVERYDAY[language] = GrammarGraph(
            Intents(language=language, intents={k: v for k, v in merged.items() if v.data},
                    slot_lists=own.slot_lists, expansion_rules=own.expansion_rules, skip_words=ha.skip_words),
            FILLER, domain="assistant")
    return _EVERYDAY[language]


class TemplateUnderstander:
    def __init__(self, registry: Registry, language: str = "en", strip_prefixes: tuple[str, ...] = (),
                 fuzzy: bool = True, area: str = ""):
        """`area`: the area the box stands in, meant where a light command names no area and no device;
        empty: none."""
        data = get_intents(language)
        if data is None:
            raise ValueError(f"no sentence templates for language {language!r}")
        self.area = normalize(area)
        # Without an area the sentences are Home Assistant's and ours alone, as they always were.
        here = {"HA": HERE_HA, "OWN": HERE_OWN} if self.area else {"HA": {}, "OWN": {}}
        data = {**data, "intents": {k: {**v, "data": v["data"] + _here(here["HA"].get(k))}
                                    for k, v in data["intents"].items() if k in SUPPORTED}}
        self.intents = Intents.from_dict(data)
        self.own = Intents.from_dict({
            "language": language, "lists": data.get("lists", {}),
            "expansion_rules": {**data.get("expansion_rules", {}), "timer_length": TIMER_LENGTH},
            "intents": {k: {"data": [{"sentences": v}] + _here(here["OWN"].get(k))} for k, v in OWN.items()}})
        self.everyday = everyday(language, self.intents, self.own)
        self.context = {"area": self.area} if self.area else None  # hassil's intent context
        self.language = language
        self.registry = registry
        # Longest first, so "hey jarvis" is stripped before "jarvis".
        self.strip_prefixes = sorted({normalize(p) for p in strip_prefixes}, key=len, reverse=True)
        self.fuzzy = fuzzy
        self._version = -1
        self._refresh()
        self.understand("turn on the light")  # hassil parses templates lazily: pay that at start-up

    def _refresh(self) -> None:
        """Slot lists from the registry as it is now: discovery adds and removes devices while we run."""
        if self._version == self.registry.version:
            return
        self._version = self.registry.version
        devices = list(self.registry.devices.values())
        names = [(n, d.id, d.domain) for d in devices for n in d.spoken_names]
        self._home_key = (self.language, tuple(names), tuple(self.registry.areas), self.area)
        self.slot_lists = {
            "name": TextSlotList.from_tuples([(n, i, {"domain": dom}) for n, i, dom in names] or [("\u2400", "")],
                                             allow_template=False),
            "area": TextSlotList.from_strings(self.registry.areas or ["\u2400"], allow_template=False),
            "floor": TextSlotList.from_strings(["\u2400"], allow_template=False),
            "state": TextSlotList.from_tuples([("on", "on"), ("off", "off")], allow_template=False),
        }
        # The sentences to snap misheard text onto depend on the devices, so they follow the registry too.
        self.snap = VocabularySnap(self.registry, accepts=self._exact_target, here=self.area) if self.fuzzy else None

    def _exact_target(self, sentence: str) -> bool:
        """Whether the templates take a sentence of the snap's vocabulary as it is. Checking the few
        hundred sentences of a home costs seconds (hassil, about 13 ms each), and every assistant made
        for the same home (a restart, Wyoming's own understanding, the tests) asks the same questions:
        the answers are kept per home. Home Assistant reads "set all the lights to red", said to a box in
        an area, as that area's; the snap lists it as every light's, so there it is left out."""
        key = (self._home_key, sentence)
        if (known := _ACCEPTED.get(key)) is None:
            i = self._exact(sentence)
            known = _ACCEPTED[key] = i is not None and i.unknown_name is None and not (
                self.area and i.area == self.area and "all" in sentence.split() and self.area not in sentence)
            if len(_ACCEPTED) > ACCEPTED_KEPT:  # many homes in one process: start over
                _ACCEPTED.clear()
        return known

    def clean(self, text: str) -> str:
        t = normalize(re.sub(r"[^\w%' ]+", " ", text))
        for p in self.strip_prefixes:
            if t == p or t.startswith(p + " "):
                return t[len(p):].strip()
        return t

    def understand(self, text: str) -> Intent | None:
        """The intent, with confidence 1 when the templates match exactly; otherwise the nearest sentence
        this home can say, with its closeness as the confidence; None when nothing is near."""
        t = self.clean(text)
        if not t:
            return None
        self._refresh()
        r = recognize_best(t, self.own, slot_lists=self.slot_lists, language=self.language, best_slot_name="name",
                           intent_context=self.context)
        if r is not None:
            return self._intent(r, t)
        exact = self._exact(t)
        if exact is not None and not exact.unknown_name:
            return exact
        snap = self.snap.nearest(t) if self.snap else None
        if snap is not None and snap.confidence >= (NEAR if exact is None else FUZZY_OVER_UNKNOWN) and (
                self.snap.action_heard(snap.sentence, t)):
            intent = self._exact(snap.sentence)
            return dataclasses.replace(intent, source=Source.FUZZY, confidence=round(snap.confidence, 3))
        return exact  # a command shape naming something this home does not have, or None

    def _exact(self, t: str) -> Intent | None:
        r = recognize_best(t, self.intents, slot_lists=self.slot_lists, language=self.language,
                           best_slot_name="name", intent_context=self.context)
        if r is not None and "conversation_command" in r.entities:
            return None  # "in 5 minutes turn off the light": a delayed command, which the box does not do
        if r is not None and _name_alone(r, t):
            return None
        if r is not None:
            return self._intent(r, t)
        return self._unknown_target(t)

    def _intent(self, r, text: str) -> Intent:
        e = {k: v.value for k, v in r.entities.items()}
        if r.intent.name in BOX:  # its "name" is a timer's, not a device's
            return Intent(name=r.intent.name, text=text, domain="assistant", slots=e)
        name = e.get("name")
        bright = e.get("brightness")
        color = e.get("color")
        domain = e.get("domain") or r.context.get("domain") or "light"
        return Intent(
            name=r.intent.name, text=text,
            device_ids=(name,) if name else (),
            area=e.get("area"),
            all_devices=not name and not e.get("area"),  # "which lights are on" asks about all of them
            domain=domain if isinstance(domain, str) else "light",
            brightness=int(bright) if bright is not None else None,
            color=str(color) if color else None,
            slots={k: v for k, v in e.items()},
        )

    def _unknown_target(self, text: str) -> Intent | None:
        """A sentence shaped like a command whose device or area this home does not have."""
        r = recognize_best(text, self.intents, slot_lists=self.slot_lists, language=self.language,
                           allow_unmatched_entities=True, intent_context=self.context)
        if r is None:
            return None
        unmatched = {u.name: getattr(u, "text", "").strip() for u in r.unmatched_entities_list}
        open_slots = [k for k in ("name", "area") if unmatched.get(k)]
        if len(open_slots) != 1 or set(unmatched) - {"name", "area", "domain"}:
            return None  # two unknowns at once is not a command we half understood
        target = unmatched[open_slots[0]]
        # Guard against the whole sentence landing in the open slot ("what is the weather" as a name).
        literal = len(text.split()) - len(target.split())
        if literal < 2 or len(target.split()) > 4:
            return None
        if target in self.registry.areas:  # "turn on the kitchen": an area, said without "lights"
            return Intent(name=r.intent.name, text=text, area=target)
        # "the garage light": name the thing as said, not just the area word hassil captured
        said = re.search(rf"\b{re.escape(target)}( lights?| lamps?)?\b", text)
        return Intent(name=r.intent.name, text=text, unknown_name=said.group(0) if said else target)

"""Text, or the recogniser's readings of the audio, made a decision: act, ask back, decline, or leave it
to the LLM. Owns the ways of understanding (the user's own intents first, then Home Assistant's
sentences, snapped when misheard), the close listening (rescore.py), and the question it asked back.

It plans an intent's effect through the handlers it is given (to know whether it switches anything, and
what), but carries nothing out and publishes nothing: the turn does.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ..config import Config
from ..home.actions import as_command
from ..home.registry import Registry
from ..types import Intent, Outcome, Source
from . import rescore
from .custom import CustomIntents
from .fuzzy import FILLER as SMALL_WORDS
from .fuzzy import words
from .paths import GrammarGraph, GrammarTooLarge
from .templates import TemplateUnderstander

log = logging.getLogger(__name__)

# An answer to "Should I ...?" is read as a whole: a negation or a cancel word anywhere wins ("Right,
# cancel that", "OK, wait, no", "Please don't"), and a yes counts only when nothing else was said around
# it but politeness ("yes please", "do it", "sure, go ahead"); a yes that starts a longer sentence
# counts for a light but not for a lock (television says "yes" too).
NO = re.compile(r"\b(no|nope|nah|not|don't|dont|do not|cancel|never ?mind|stop|wait|abort|negative|wrong|"
                r"leave it|forget it)\b")
YES_WORD = r"(yes|yeah|yep|yup|sure|ok|okay|correct|right|do it|go ahead|please do|affirmative|of course)"
POLITE = r"(please|thanks|thank you|do it|go ahead|that's right|that is right|yes|sure)"
YES = re.compile(rf"^{YES_WORD}\b")
YES_ALONE = re.compile(rf"^{YES_WORD}( {POLITE})*( {YES_WORD})*$")
NOT_SURE = "Sorry, was that a yes or a no?"
NOT_UNDERSTOOD = "Sorry, I didn't understand that."


class Verdict(StrEnum):
    ACT = "act"  # carry out the outcome (it may also be only an answer, "the porch light is on")
    ASK = "ask"  # the outcome is the question; a "yes" next turn carries the intent out
    DECLINED = "declined"  # the user said no to the question
    NOT_UNDERSTOOD = "not_understood"
    ANSWER = "answer"  # the LLM's spoken answer
    DEFER = "defer"  # for the LLM to try; `guess` is the templates' reading, if any


@dataclass(frozen=True)
class Question:
    """What the assistant asked back about; a clear yes next turn carries it out."""

    intent: Intent
    weighty: bool  # a lock, a cover, an alarm: only a yes on its own will do
    repeated: bool = False  # asked once more after an answer that was neither yes nor no


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    outcome: Outcome | None = None  # None only when deferred
    guess: Intent | None = None


def _content(sentence: str) -> list[str]:
    """The words of a sentence that say something: "turn off my kitchen light" and "turn off the kitchen
    light" say the same."""
    return [w for w in words(sentence) if w not in SMALL_WORDS]


class Understanding:
    def __init__(self, cfg: Config, registry: Registry, custom: CustomIntents, plan: Callable[[Intent], Outcome],
                 here: str | None = None):
        """`plan`: what carrying out an intent would do (the handlers'), without doing it. `here`: the
        area the requests come from, meant where a light command names no area or device; by default the
        box's own (`area` in the config)."""
        self.cfg = cfg
        self.registry = registry
        self.custom = custom
        self.plan = plan
        self.here = cfg.area if here is None else here
        phrases = [w.phrase for w in cfg.wake.entries()]
        spoken = tuple(p for phrase in phrases for p in (phrase, *phrase.split()[-1:]))  # "hey jarvis", "jarvis"
        self.templates = TemplateUnderstander(registry, cfg.language, strip_prefixes=spoken,
                                              fuzzy=cfg.understand.fuzzy, area=self.here)
        # The user's own intents, whatever their size, as one graph the close listening searches.
        self.grammar = self._graph(custom) if custom and cfg.understand.fuzzy else None
        self.grammars = [g for g in (self.grammar, self.templates.everyday if cfg.understand.fuzzy else None) if g]
        self.pending: Question | None = None

    @staticmethod
    def _graph(custom: CustomIntents) -> GrammarGraph | None:
        try:
            return GrammarGraph(custom.intents, custom.intents.skip_words)
        except GrammarTooLarge as e:
            log.warning("your intents are matched exactly only, not listened for closely: %s", e)
            return None

    # -- hearing --------------------------------------------------------------------------------------

    @property
    def hotwords(self) -> str | None:
        """Device names for the recogniser, as the registry knows them now (discovery changes them)."""
        return self.registry.asr_hint() if self.cfg.asr.hints else None

    def listens_closely(self, asr) -> bool:
        """Several readings of the audio, weighed against the home's sentences (rescore.py)."""
        return (self.cfg.understand.fuzzy and (self.cfg.asr.nbest > 1 or self.cfg.understand.check)
                and asr is not None and asr.nbest)

    def steers(self, asr) -> bool:
        """The user's grammar is also read straight from the audio (steered.py) when not heard as it is."""
        return (self.grammar is not None and self.cfg.understand.steer and self.listens_closely(asr)
                and self.cfg.understand.check and getattr(asr, "steers", False))

    def hear(self, asr, audio) -> rescore.Heard:
        """The readings of the audio and what they mean (runs on the recogniser's worker)."""
        u = self.cfg.understand
        return rescore.hear(asr, audio, self.hotwords, self.templates, self.lookup, n=self.cfg.asr.nbest,
                            check=u.check, unsure=self.unsure, grammars=self.grammars, steer=u.steer)

    def lookup(self, text: str) -> Intent | None:
        """The user's own intents first: they are the most specific sentences this home has."""
        return self.custom.understand(self.templates.clean(text)) or self.templates.understand(text)

    def whole(self, heard: rescore.Heard | None) -> bool:
        """What was heard is a command of this home to act on, a sentence no other one goes on from, and
        heard as finished: no reading of the recogniser's says more or trails off ("turn on the kitchen
        light and the" is often read "turn on the kitchen light", but not by all its readings). It is
        acted on without waiting for the rest of the pause (ahead.py). The box's everyday sentences are
        whole when nothing that may follow changes what they mean ("what time is it", not "set a timer
        for five minutes": "and thirty seconds" may follow); the LLM's and answers to a question wait for
        the whole pause."""
        snap = self.templates.snap
        if self.pending is not None or snap is None or heard is None or heard.intent is None:
            return False
        intent = heard.intent
        if intent.confidence < self.cfg.understand.act_threshold or intent.unknown_name:
            return False
        said = len(words(intent.text))
        if any(len(words(r.text)) > said or r.text.rstrip().endswith(("...", "\u2026", "-"))
               for r in heard.readings):
            return False
        clean = self.templates.clean
        sentence = clean(intent.text)
        if intent.source is Source.CUSTOM:
            return self.grammar is not None and self.grammar.says_all(sentence)
        if snap.says_all(sentence) or self.templates.everyday.says_all(sentence):
            return True
        # Heard with a word of the speaker's own ("turn off my kitchen light"): the same command as the home's
        # sentence that differs from it in small words only, or as another reading that says it as the home
        # does; nothing goes on from either.
        means = rescore.meaning(intent, self.registry)
        near = snap.nearest(sentence)
        said = [near.sentence] if near is not None and _content(near.sentence) == _content(sentence) else []
        return any(snap.says_all(clean(s)) and rescore.meaning(self.lookup(s), self.registry) == means
                   for s in said + [r.text for r in heard.readings])

    # -- deciding -------------------------------------------------------------------------------------

    @property
    def unsure(self) -> float:
        """A confidence that asks back: between the ask and the act thresholds."""
        return (self.cfg.understand.ask_threshold + self.cfg.understand.act_threshold) / 2

    def read(self, text: str, heard: rescore.Heard | None = None) -> Decision:
        """`heard`: the close listening's reading of the audio, when it already worked out the intent (or
        that there is none)."""
        pending, self.pending = self.pending, None
        if pending is not None and (answer := self._answer(self.templates.clean(text), pending)) is not None:
            return answer
        route = self.cfg.llm.route
        intent = None
        if route != "llm":
            intent = heard.intent if heard is not None else self.lookup(text)
        # A command shaped sentence naming no known device ("it is too dark in the kitchen" reads as a
        # device called "it is too dark"), or one too far from anything this home can say, is also the
        # LLM's to try; what it says is validated anyway.
        unsure = intent is None or intent.unknown_name or intent.confidence < self.cfg.understand.ask_threshold
        if route != "templates" and unsure:
            return Decision(Verdict.DEFER, guess=intent)
        return self.decide(intent)

    def _answer(self, said: str, q: Question) -> Decision | None:
        """The reply to a question: carried out, declined, asked once more, or None when it is a new
        request instead ("no, turn on the hall light" is a no; "turn on the hall light" a new request)."""
        if NO.search(said):
            return Decision(Verdict.DECLINED, Outcome("OK, I won't.", ok=False, intent=q.intent))
        if (YES_ALONE if q.weighty else YES).match(said):
            confirmed = dataclasses.replace(q.intent, confidence=1.0)  # the user said yes
            return Decision(Verdict.ACT, self.plan(confirmed))
        new = self.lookup(said)
        if new is not None and not new.unknown_name and new.confidence >= self.cfg.understand.ask_threshold:
            return None
        if q.repeated:  # twice neither yes nor no: nothing is done
            return Decision(Verdict.DECLINED, Outcome("OK, I won't.", ok=False, intent=q.intent))
        self.pending = dataclasses.replace(q, repeated=True)
        return Decision(Verdict.ASK, Outcome(NOT_SURE, ok=False, intent=q.intent))

    def weigh_llm(self, intent: Intent, spoken: bool) -> Decision:
        """The LLM's reading, under the same rules as a template's: a lock or a door is asked about first."""
        if spoken and intent.all_devices:
            # Measured in noise: 5 of 12 of the LLM's whole-home readings of speech went the wrong way
            # ("don't hide everything off" -> on) or came from television talk; the house is asked.
            intent = dataclasses.replace(intent, confidence=self.unsure)
        return self.decide(intent)

    def decide(self, intent: Intent | None) -> Decision:
        """Confidence with consequences: act when sure, ask back when unsure or when the device is one
        that matters (a lock, a door), do nothing when what was said is not near any command."""
        u = self.cfg.understand
        if intent is None or intent.confidence < u.ask_threshold:
            return Decision(Verdict.NOT_UNDERSTOOD, Outcome(NOT_UNDERSTOOD, ok=False))
        outcome = self.plan(intent)
        weighty = any(d.domain in u.confirm_domains for c in outcome.commands if (d := self.registry.get(c.device_id)))
        # What does something (a device's message, or a timer started on the box itself) is asked about
        # when unsure: a heard "two sugars" was once a 2-second timer at 0.75. So is an answer ("open the
        # pod bay doors" was once told the date at 0.75): a box that speaks up unasked is not trusted either.
        does = outcome.commands or outcome.effect or (outcome.ok and outcome.reply)
        if does and (intent.confidence < u.act_threshold or weighty):
            self.pending = Question(intent, weighty)
            return Decision(Verdict.ASK, Outcome(self._question(intent, outcome), ok=False, intent=intent))
        return Decision(Verdict.ACT, outcome)

    def _question(self, intent: Intent, outcome: Outcome) -> str:
        if intent.source is Source.CUSTOM:
            return f"Did you say: {intent.text}?"
        if intent.source is Source.LLM:  # its text is the user's free words: say what it would do instead
            return f"Should I {as_command(intent, self.registry)}?"
        if not outcome.commands and not outcome.effect:  # an answer: "Did you ask: what time is it?"
            return f"Did you ask: {intent.text}?"
        return f"Should I {intent.text}?"

    def forget(self) -> None:
        """A question left unanswered is dropped."""
        self.pending = None

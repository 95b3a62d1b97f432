"""One turn: a command heard, understood, decided on, carried out and answered.

A method per stage, each timed into the turn's own metrics and ending in an event:
hear -> `transcript`, understand (and the LLM when the templates defer) -> `ask` / `llm`, act -> `intent`,
`command`, `acted`, `outcome`, speak -> `reply`. Nothing here keeps state between turns; the question the
assistant asked back lives in `Understanding`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .audio.player import Player
from .config import Config
from .engines.load import Engines
from .events import EventBus, Kind, TurnMetrics
from .mqtt_link import MqttError, MqttLink
from .types import Outcome
from .understand.llm import sentences
from .understand.rescore import Heard
from .understand.understanding import Decision, Understanding, Verdict
from .workers import Workers

log = logging.getLogger(__name__)
SORRY = "Sorry, something went wrong. Please try again."


@dataclass
class Parts:
    """What every turn uses, made once by the conductor."""

    cfg: Config
    engines: Engines
    understanding: Understanding
    player: Player
    link: MqttLink | None
    events: EventBus
    workers: Workers


async def recognise(p: Parts, audio: np.ndarray) -> tuple[str, Heard | None]:
    """The recogniser on the audio, listening closely when the home's sentences can be weighed."""
    asr = p.engines.asr
    if p.understanding.listens_closely(asr):
        heard = await p.workers.run("asr", p.understanding.hear, asr, audio)
        return heard.text, heard
    return await p.workers.run("asr", asr.transcribe, audio, p.understanding.hotwords), None


@dataclass
class Turn:
    parts: Parts
    metrics: TurnMetrics = field(default_factory=TurnMetrics)
    t0: float = field(default_factory=time.perf_counter)  # the endpoint decision, or the typed request
    stage: str = "hear"  # the stage under way, named in an error


    async def hear(self, audio: np.ndarray, ahead: tuple[tuple[str, Heard | None], float] | None = None
                   ) -> tuple[str, Heard | None]:
        """The transcript and, when listening closely, the readings weighed against the home's sentences;
        `ahead`: those already heard while the pause went by (ahead.py), and the recogniser's time."""
        p, m = self.parts, self.metrics
        self.stage = "hear"
        p.events.emit(Kind.STATE, state="thinking")
        if ahead is not None:
            (text, heard), m.asr_s = ahead
        else:
            text, heard = await recognise(p, audio)
            m.asr_s = time.perf_counter() - self.t0
        p.events.emit(Kind.TRANSCRIPT, text=text, seconds=round(m.utterance_s, 2))
        return text, heard

    async def understand(self, text: str, heard: Heard | None = None, spoken: bool = False) -> Decision:
        """`spoken`: the text is a transcript, with a transcript's mistakes."""
        self.stage, t = "understand", time.perf_counter()
        decision = await asyncio.to_thread(self.parts.understanding.read, text, heard)
        self.metrics.understand_s = time.perf_counter() - t
        if decision.verdict is Verdict.DEFER:
            decision = await self._consult_llm(text, decision.guess, spoken)
        if decision.verdict is Verdict.ASK:
            self.parts.events.emit(Kind.ASK, intent=decision.outcome.intent)
        return decision

    async def _consult_llm(self, text: str, guess, spoken: bool) -> Decision:
        """Text no template understood: the LLM makes it a validated intent or a spoken answer. `guess`
        is the templates' unknown-device reading, said instead of a refusal when the LLM cannot help."""
        p, t = self.parts, time.perf_counter()
        # a failure comes back as reply.error
        reply = await p.workers.run("llm", p.engines.brain.respond, text, p.understanding.here)
        self.metrics.understand_s += time.perf_counter() - t
        p.events.emit(Kind.LLM, backend=reply.backend, model=reply.model, seconds=round(time.perf_counter() - t, 3),
                      error=reply.error)
        if reply.intent:
            return p.understanding.weigh_llm(reply.intent, spoken)
        # The templates' reading names what the home lacks ("I don't know any device called garage
        # heater"): better than the LLM's refusal, or a generic answer when it cannot act either.
        if guess and (reply.error or guess.unknown_name):
            if reply.speech is not None:  # a streamed answer: end it, freeing the model
                await p.workers.run("llm", reply.speech.close)
            return p.understanding.decide(guess)
        return Decision(Verdict.ANSWER, Outcome("", ok=reply.error is None, speech=reply.speech))

    async def act(self, decision: Decision) -> Outcome:
        """Delivers the outcome's commands, if any; an outcome that cannot be delivered says so."""
        p, outcome = self.parts, decision.outcome
        self.stage = "act"
        if outcome.intent and decision.verdict is not Verdict.DECLINED:
            p.events.emit(Kind.INTENT, intent=outcome.intent)
        if outcome.effect and decision.verdict is Verdict.ACT:
            outcome.effect()
        if outcome.commands:
            outcome = await self._deliver(outcome)
            self.metrics.to_publish_s = time.perf_counter() - self.t0
        p.events.emit(Kind.OUTCOME, outcome=outcome)
        return outcome

    async def _deliver(self, outcome: Outcome) -> Outcome:
        p = self.parts
        if p.link is None:
            return Outcome("Sorry, I am not connected to the home.", ok=False, intent=outcome.intent)
        try:
            self.metrics.publish_s = await p.link.send_all(outcome.commands)
        except MqttError as e:
            p.events.emit(Kind.ERROR, where="mqtt", message=str(e))
            reply = ("Sorry, the home's message broker did not confirm it, so I can't tell whether it was "
                     "done." if e.written else
                     "Sorry, I could not reach the home's message broker, so nothing was switched.")
            return Outcome(reply, ok=False, intent=outcome.intent)
        for c in outcome.commands:
            p.events.emit(Kind.COMMAND, topic=c.topic, payload=c.payload)
        p.events.emit(Kind.ACTED, outcome=outcome)
        return outcome

    async def speak(self, text: str | Iterator[str]) -> str:
        """Speaks a reply; a streamed one (LLM answer) sentence by sentence, each as soon as it is
        generated. Returns the text said."""
        p = self.parts
        self.stage = "speak"
        if isinstance(text, str):
            said = [text]
            if p.player.speaks:
                await self._say(text)
        else:
            said, pending = [], sentences(text)
            while (s := await p.workers.run("llm", next, pending, None)) is not None:
                said.append(s)
                if p.player.speaks:
                    await self._say(s)
                if p.player.cut:  # the user stopped it: the model is freed, not asked for more
                    if (close := getattr(text, "close", None)) is not None:
                        await p.workers.run("llm", close)
                    break
        text = " ".join(said)
        if p.player.speaks:
            await p.player.end_of_reply()
        p.events.emit(Kind.REPLY, text=text)
        return text

    async def _say(self, text: str) -> None:
        m, t = self.metrics, time.perf_counter()
        self.parts.events.emit(Kind.STATE, state="speaking")

        def on_audio(seconds: float) -> None:
            if m.tts_first_audio_s is None:
                m.tts_first_audio_s = time.perf_counter() - t
                m.to_first_audio_s = time.perf_counter() - self.t0
            m.reply_audio_s += seconds

        await self.parts.player.say(text, on_audio)
        m.tts_total_s += time.perf_counter() - t

    async def failed(self, error: Exception, apologise: bool = True) -> str:
        """Ends the turn after a part failed: logged with the stage, an error event, and an apology
        when the voice still works. Returns what was said."""
        log.error("the %s stage failed: %s: %s", self.stage, type(error).__name__, error,
                  exc_info=not isinstance(error, OSError))
        self.parts.events.emit(Kind.ERROR, where=self.stage, message=f"{type(error).__name__}: {error}")
        self.parts.player.cue("error")
        if not apologise or self.stage == "speak":  # the voice or the speaker is what failed
            return ""
        try:
            return await self.speak(SORRY)
        except Exception as e:  # noqa: BLE001 - the voice fails too: the log says so
            log.error("could not apologise either: %s: %s", type(e).__name__, e)
            return ""

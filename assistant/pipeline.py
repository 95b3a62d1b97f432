"""The conductor: owns the order of the stages and the conversation state.

frames ─▶ wake word ─▶ endpointing ─▶ ASR ─▶ understand ─▶ act (MQTT) ─▶ speak
Data flows one way; stages never call back into earlier ones. Model work runs on one worker thread per
engine, never on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import numpy as np

from .config import Config
from .endpoint import Endpointer
from .engines.llm.base import LlmError
from .engines.load import Engines, make_brain
from .events import EventBus, TurnMetrics
from .home.actions import as_command, plan
from .home.live import Home
from .models import ModelStore
from .mqtt_link import MqttError, MqttLink
from .presence import Inbox, discovery_configs
from .types import SAMPLE_RATE, Command, Intent, Outcome
from .understand import rescore
from .understand.custom import CustomIntents
from .understand.custom import from_config as custom_grammar
from .understand.llm import sentences
from .understand.templates import TemplateUnderstander

log = logging.getLogger(__name__)


YES = re.compile(r"^(yes|yeah|yep|sure|please|do it|ok|okay|correct|right)\b")
NO = re.compile(r"^(no|nope|don't|do not|cancel|never mind|stop)\b")


def wake_phrase(model_name: str) -> str:
    return model_name.split("_v")[0].replace("_", " ")


class Assistant:
    def __init__(self, cfg: Config, engines: Engines, link: MqttLink | None, sink=None,
                 events: EventBus | None = None):
        self.cfg = cfg
        self.engines = engines
        self.link = link
        self.sink = sink
        self.events = events or EventBus()
        self.home = Home(cfg)
        self.registry = self.home.registry
        self.topic = f"{cfg.mqtt.topic_prefix}/{cfg.site}"
        self.muted = False  # the wake word is ignored; announcements are still spoken
        self.inbox = Inbox(cfg)  # mute and announcements from the broker, taken between turns
        phrase = wake_phrase(cfg.wake.model)
        self.custom = CustomIntents(custom_grammar(cfg), cfg.language)
        self.understander = TemplateUnderstander(self.registry, cfg.language,
                                                 strip_prefixes=(phrase, phrase.split()[-1]),
                                                 fuzzy=cfg.understand.fuzzy,
                                                 custom_sentences=self.custom.sentences() if cfg.understand.fuzzy else None)
        self.pending: Intent | None = None  # asked back about; a "yes" in the next turn carries it out
        self._custom_words = self.custom.vocabulary()
        self.events.subscribe(self._publish_status)
        self._listen = ThreadPoolExecutor(1, thread_name_prefix="listen")  # wake word + VAD
        self._asr = ThreadPoolExecutor(1, thread_name_prefix="asr")
        self._tts = ThreadPoolExecutor(1, thread_name_prefix="tts")
        self._llm = ThreadPoolExecutor(1, thread_name_prefix="llm")
        if cfg.llm.route != "templates" and engines.brain is None:
            engines.brain = make_brain(cfg, ModelStore(cfg.models_dir or None))
        if engines.brain is not None:
            engines.brain.registry = self.registry  # the live one, with discovered devices
        self.state = "idle"
        self.wake_cpu_s = 0.0  # CPU spent on the wake word, over wake_frames frames (for the benchmark)
        self.wake_frames = 0
        self.frames_heard = 0
        if link:
            self.home.attach(link)
            self.inbox.attach(link)
            link.when_connected(self._announce_self)

    # -- state and events -------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self.events.emit("state", state=state)
        if self.link:
            self.link.publish_nowait(f"{self.topic}/state", self._shown_state(), retain=True)

    def _shown_state(self) -> str:
        return "muted" if self.muted and self.state == "idle" else self.state

    def _announce_self(self) -> None:
        """On every (re)connect, on the MQTT thread: a restarted broker may have lost retained messages."""
        for topic, payload in discovery_configs(self.cfg):
            self.link.publish_nowait(topic, payload, retain=True)
        self.link.publish_nowait(f"{self.topic}/mute", "ON" if self.muted else "OFF", retain=True)
        self.link.publish_nowait(f"{self.topic}/state", self._shown_state(), retain=True)

    def _publish_status(self, ev) -> None:
        """Last transcript and last intent, retained, for the Home Assistant sensors."""
        if self.link is None:
            return
        if ev.kind == "transcript":
            self.link.publish_nowait(f"{self.topic}/transcript", ev.data["text"].strip()[:255], retain=True)
        elif ev.kind == "intent":
            i = ev.data["intent"]
            body = {"name": i.name, "text": i.text, "slots": i.slots, "source": i.source}
            self.link.publish_nowait(f"{self.topic}/last_intent", json.dumps(body, default=str), retain=True)

    @property
    def hotwords(self) -> str | None:
        """Device names for the recogniser, as the registry knows them now (discovery changes them)."""
        return self.registry.asr_hint(self._custom_words) if self.cfg.asr.hints else None

    async def _run(self, pool: ThreadPoolExecutor, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    # -- audio in ---------------------------------------------------------------------------------

    def _wake_score(self, frame: np.ndarray) -> float:
        t = time.process_time()
        s = self.engines.wake.score(frame)
        self.wake_cpu_s += time.process_time() - t
        self.wake_frames += 1
        return s

    async def run(self, source, awake: bool = False) -> None:
        """Listen to a source until it ends (a file) or forever (a microphone). `awake`: the source starts
        with the command itself, as if the wake word had just been heard."""
        self._set_state("idle")
        if awake:
            self.engines.vad.reset()  # what it heard before this source is not part of it
        ep: Endpointer | None = self._new_endpointer() if awake else None
        metrics = TurnMetrics()
        refractory_until = 0.0
        async for frame in source.frames():
            self.frames_heard += 1
            now_s = self.frames_heard * len(frame) / SAMPLE_RATE
            if ep is None and not self.inbox.queue.empty():
                if await self._from_outside():
                    self.engines.wake.reset()
                    source.flush()  # it heard itself
                    self._set_state("idle")
            if ep is None and self.muted:
                continue
            if ep is None:
                score = await self._run(self._listen, self._wake_score, frame)
                if score < self.cfg.wake.threshold or now_s < refractory_until:
                    continue
                metrics = TurnMetrics(wake_score=score, wake_audio_s=now_s)
                self.events.emit("wake", score=round(score, 3), at_s=round(now_s, 2))
                self.engines.vad.reset()
                ep = self._new_endpointer()
                self._set_state("listening")
                continue
            probs = await self._run(self._listen, self.engines.vad.probabilities, frame)
            end = ep.feed(frame, probs)
            if end is None:
                continue
            ep = None
            metrics.note_endpoint(end)
            spoken = await self._turn(end.audio, metrics) if end.reason != "no_speech" else ""
            if end.reason == "no_speech":
                self.pending = None  # a question left unanswered is dropped
            source.flush()  # what the mic heard while we were busy, our own voice included, is stale
            if self.pending is not None or (spoken.rstrip().endswith("?") and self.cfg.llm.follow_up_s > 0):
                # The assistant asked a question: listen for the answer without the wake word.
                metrics = TurnMetrics()
                self.engines.vad.reset()
                ep = self._new_endpointer(start_timeout_s=self.cfg.llm.follow_up_s or None)
                self._set_state("listening")
                continue
            self.engines.wake.reset()
            refractory_until = now_s + self.cfg.wake.refractory_s
            self._set_state("idle")
        end = ep.finish() if ep is not None else None
        if end is not None:  # a file that ends mid-command, or before the noise after it let up
            metrics.note_endpoint(end)
            await self._turn(end.audio, metrics)
            self._set_state("idle")

    async def _from_outside(self) -> bool:
        """Mute and announcements from the broker, only ever between turns. True if it spoke."""
        spoke = False
        for kind, value in self.inbox.take():
            if kind == "mute":
                self.muted = bool(value)
                self.events.emit("mute", muted=self.muted)
                if self.link:
                    self.link.publish_nowait(f"{self.topic}/mute", "ON" if self.muted else "OFF", retain=True)
                self._set_state("idle")
            elif kind == "say":
                self.events.emit("announcement", text=value)
                await self.speak(str(value))
                spoke = True
        return spoke

    def _new_endpointer(self, start_timeout_s: float | None = None) -> Endpointer:
        c = self.cfg.listen
        return Endpointer(threshold=c.vad_threshold, silence_s=c.silence_ms / 1000,
                          start_timeout_s=start_timeout_s or c.start_timeout_s, max_s=c.max_seconds)

    async def _turn(self, audio: np.ndarray, m: TurnMetrics) -> str:
        """One command, heard to answered; returns what was said back."""
        t0 = time.perf_counter()
        self._set_state("thinking")
        heard = None
        if self._listens_closely:
            heard = await self._run(self._asr, self._hear, audio)
            text = heard.text
        else:
            text = await self._run(self._asr, self.engines.asr.transcribe, audio, self.hotwords)
        m.asr_s = time.perf_counter() - t0
        self.events.emit("transcript", text=text, seconds=round(m.utterance_s, 2))
        if not text.strip():
            return ""
        outcome = await self.handle_text(text, m, t0, heard, spoken=True)
        spoken = await self.speak(outcome.speech or outcome.reply, m, t0)
        self.events.emit("turn", metrics=m)
        return spoken

    # -- understanding and action -------------------------------------------------------------------

    @property
    def _listens_closely(self) -> bool:
        """Several readings of the audio, weighed against the home's sentences (understand/rescore.py)."""
        return (self.cfg.understand.fuzzy and (self.cfg.asr.nbest > 1 or self.cfg.understand.check)
                and hasattr(self.engines.asr, "hypotheses"))

    def _hear(self, audio: np.ndarray):
        u = self.cfg.understand
        return rescore.hear(self.engines.asr, audio, self.hotwords, self.understander, self._understand,
                            n=self.cfg.asr.nbest, check=u.check, unsure=self._unsure)

    @property
    def _unsure(self) -> float:
        """A confidence that asks back: between the ask and the act thresholds."""
        return (self.cfg.understand.ask_threshold + self.cfg.understand.act_threshold) / 2

    async def handle_text(self, text: str, m: TurnMetrics | None = None, t0: float | None = None,
                          heard: rescore.Heard | None = None, spoken: bool = False) -> Outcome:
        """`heard`: the listening's reading of the audio, when it already worked out the intent (or that
        there is none). `spoken`: the text is a transcript, with a transcript's mistakes."""
        m = m or TurnMetrics()
        t0 = t0 if t0 is not None else time.perf_counter()
        t = time.perf_counter()
        pending, self.pending = self.pending, None
        answer = self.understander.clean(text)
        if pending is not None and (YES.match(answer) or NO.match(answer)):
            if NO.match(answer):
                return self._done(Outcome("OK, I won't.", ok=False, intent=pending))
            confirmed = dataclasses.replace(pending, confidence=1.0)  # the user said yes
            return await self._carry_out(self._outcome(confirmed), m, t0)
        route = self.cfg.llm.route
        intent = None
        if route != "llm":
            intent = heard.intent if heard is not None else await asyncio.to_thread(self._understand, text)
        m.understand_s = time.perf_counter() - t
        # A command shaped sentence naming no known device ("it is too dark in the kitchen" reads as a
        # device called "it is too dark"), or one too far from anything this home can say, is also the
        # LLM's to try; what it says is validated anyway.
        unsure = intent is None or intent.unknown_name or intent.confidence < self.cfg.understand.ask_threshold
        if route != "templates" and unsure:
            return await self._ask_llm(text, m, t0, intent, spoken)
        return await self._carry_out(self._decide(intent), m, t0)

    async def _ask_llm(self, text: str, m: TurnMetrics, t0: float, guess: Intent | None, spoken: bool) -> Outcome:
        """Text no template understood: the LLM makes it a validated intent or a spoken answer. `guess`
        is the templates' unknown-device reading, said instead of a refusal when the LLM cannot help."""
        t = time.perf_counter()
        try:
            reply = await self._run(self._llm, self.engines.brain.respond, text)
        except LlmError as e:
            self.events.emit("error", where="llm", message=str(e))
            return await self._carry_out(Outcome("Sorry, I didn't understand that.", ok=False), m, t0)
        m.understand_s += time.perf_counter() - t
        self.events.emit("llm", backend=reply.backend, model=reply.model, seconds=round(time.perf_counter() - t, 3), error=reply.error)
        if reply.intent:  # the same rules as a template's: a lock or a door is asked about first
            intent = reply.intent
            if spoken and intent.all_devices:
                # Measured in noise: 5 of 12 of the LLM's whole-home readings of speech went the wrong way
                # ("don't hide everything off" -> on) or came from television talk; the house is asked.
                intent = dataclasses.replace(intent, confidence=self._unsure)
            return await self._carry_out(self._decide(intent), m, t0)
        # The templates' reading names what the home lacks ("I don't know any device called garage
        # heater"): better than the LLM's refusal, or a generic answer when it cannot act either.
        if guess and (reply.error or (guess.unknown_name and reply.intent is None)):
            if hasattr(reply.speech, "close"):  # a streamed answer: end it, freeing the model
                await self._run(self._llm, reply.speech.close)
            return await self._carry_out(self._decide(guess), m, t0)
        return await self._carry_out(Outcome("", ok=reply.error is None, speech=reply.speech), m, t0)

    async def _carry_out(self, outcome: Outcome, m: TurnMetrics, t0: float) -> Outcome:
        if outcome.intent:
            self.events.emit("intent", intent=outcome.intent)
        if outcome.commands:
            outcome = await self._act(outcome, m)
            m.to_publish_s = time.perf_counter() - t0
        return self._done(outcome)

    def _done(self, outcome: Outcome) -> Outcome:
        self.events.emit("outcome", outcome=outcome)
        return outcome

    def _decide(self, intent: Intent | None) -> Outcome:
        """Confidence with consequences: act when sure, ask back when unsure or when the device is one
        that matters (a lock, a door), do nothing when what was said is not near any command."""
        u = self.cfg.understand
        if intent is None or intent.confidence < u.ask_threshold:
            return Outcome("Sorry, I didn't understand that.", ok=False)
        outcome = self._outcome(intent)
        weighty = any(d.domain in u.confirm_domains for c in outcome.commands if (d := self.registry.get(c.device_id)))
        if outcome.commands and (intent.confidence < u.act_threshold or weighty):
            self.pending = intent
            self.events.emit("ask", intent=intent)
            return Outcome(self._question(intent), ok=False, intent=intent)
        return outcome

    def _question(self, intent: Intent) -> str:
        if intent.source == "custom":
            return f"Did you say: {intent.text}?"
        if intent.source == "llm":  # its text is the user's free words: say what it would do instead
            return f"Should I {as_command(intent, self.registry)}?"
        return f"Should I {intent.text}?"

    def _outcome(self, intent: Intent) -> Outcome:
        """What carrying out an intent means: the user's own intent's message, or the device commands."""
        if intent.source == "custom":
            return Outcome(self.custom.reply(intent), tuple(self._intent_messages(intent)), intent=intent)
        return plan(intent, self.registry, self.home.states)

    def _understand(self, text: str) -> Intent | None:
        """The user's own intents first: they are the most specific sentences this home has."""
        return self.custom.understand(self.understander.clean(text)) or self.understander.understand(text)

    async def _act(self, outcome: Outcome, m: TurnMetrics) -> Outcome:
        if self.link is None:
            return Outcome("Sorry, I am not connected to the home.", ok=False, intent=outcome.intent)
        try:
            m.publish_s = await self.link.send_all(outcome.commands)
        except MqttError as e:
            self.events.emit("error", where="mqtt", message=str(e))
            return Outcome("Sorry, I could not reach the home's message broker, so nothing was switched.",
                           ok=False, intent=outcome.intent)
        for c in outcome.commands:
            self.events.emit("command", topic=c.topic, payload=c.payload)
        if outcome.intent is None or outcome.intent.source != "custom":  # a custom one was just sent
            self._publish_intent(outcome.intent)
        return outcome

    def _publish_intent(self, intent: Intent | None) -> None:
        """Recognised intents on a topic of our own, for automations (see docs/mqtt.md)."""
        if intent is None or self.link is None:
            return
        for c in self._intent_messages(intent):
            self.link.publish_nowait(c.topic, c.payload)

    def _intent_messages(self, intent: Intent) -> list[Command]:
        """The intent on our topic and, with mqtt.hermes, in Rhasspy's shape. Topics are built from the
        intent's name, which comes from the templates or the config, never from what was said."""
        body = {k: v for k, v in asdict(intent).items() if v not in (None, (), {}, False) or k == "all_devices"}
        body["site"] = self.cfg.site
        out = [Command("", f"{self.topic}/intent/{intent.name}", json.dumps(body, default=list))]
        if self.cfg.mqtt.hermes:
            out.append(Command("", f"hermes/intent/{intent.name}", json.dumps(hermes(intent, self.cfg.site), default=str)))
        return out

    # -- speech out ---------------------------------------------------------------------------------

    async def speak(self, text: str | Iterator[str], m: TurnMetrics | None = None, t0: float | None = None) -> str:
        """Speaks a reply; a streamed one (LLM answer) sentence by sentence, each as soon as it is
        generated. Returns the text said."""
        m = m or TurnMetrics()
        t0 = t0 if t0 is not None else time.perf_counter()
        voice = self.sink is not None and self.engines.tts is not None
        if isinstance(text, str):
            said = [text]
            if voice:
                await self._say(text, m, t0)
        else:
            said, pending = [], sentences(text)
            while (s := await self._run(self._llm, next, pending, None)) is not None:
                said.append(s)
                if voice:
                    await self._say(s, m, t0)
        text = " ".join(said)
        if voice:
            await self.sink.end_of_reply()
        self.events.emit("reply", text=text)
        return text

    async def _say(self, text: str, m: TurnMetrics, t0: float) -> None:
        self._set_state("speaking")
        t = time.perf_counter()
        chunks = self.engines.tts.sentences(text)
        rate = self.engines.tts.sample_rate
        while (pcm := await self._run(self._tts, next, chunks, None)) is not None:
            if m.tts_first_audio_s is None:
                m.tts_first_audio_s = time.perf_counter() - t
                m.to_first_audio_s = time.perf_counter() - t0
            m.reply_audio_s += len(pcm) / rate
            await self.sink.play(pcm, rate)
        m.tts_total_s += time.perf_counter() - t

    def close(self) -> None:
        for pool in (self._listen, self._asr, self._tts, self._llm):
            pool.shutdown(wait=False, cancel_futures=True)


def hermes(intent: Intent, site: str) -> dict:
    """An intent as Rhasspy's Hermes protocol published it on hermes/intent/<intentName>."""
    def slot(name, value):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return {"entity": name, "slotName": name, "rawValue": str(value), "confidence": 1.0,
                "value": {"kind": "Number" if number else "Custom", "value": value}}

    return {"input": intent.text, "intent": {"intentName": intent.name, "confidenceScore": 1.0},
            "slots": [slot(k, v) for k, v in intent.slots.items()], "siteId": site,
            "sessionId": uuid.uuid4().hex, "customData": None}

"""The conductor: owns the order of the stages and the conversation state.

frames ─▶ wake word ─▶ endpointing ─▶ ASR ─▶ understand ─▶ act (MQTT) ─▶ speak
Data flows one way; stages never call back into earlier ones. Model work runs on one worker thread per
engine, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from .config import Config
from .endpoint import Endpointer
from .events import EventBus, TurnMetrics
from .home.actions import plan
from .home.live import Home
from .models import ModelStore
from .mqtt_link import MqttError, MqttLink
from .presence import Inbox, discovery_configs
from .types import SAMPLE_RATE, Command, Intent, Outcome
from .understand.custom import CustomIntents
from .understand.custom import from_config as custom_grammar
from .understand.templates import TemplateUnderstander

log = logging.getLogger(__name__)


def wake_phrase(model_name: str) -> str:
    return model_name.split("_v")[0].replace("_", " ")


@dataclass
class Engines:
    """The loaded models. Each is created once and only used from its own worker thread."""

    wake: object = None
    vad: object = None
    asr: object = None
    tts: object = None

    @classmethod
    def load(cls, cfg: Config, store: ModelStore, audio: bool = True, speech: bool = True) -> "Engines":
        from .engines.asr_faster_whisper import FasterWhisper
        from .engines.tts_piper import PiperTts
        from .engines.vad_silero import SileroVad
        from .engines.wake_openwakeword import OpenWakeWord

        e = cls()
        if audio:
            e.wake = OpenWakeWord(store, cfg.wake.model, cfg.wake.threshold)
            e.vad = SileroVad(store)
            e.asr = FasterWhisper(store, cfg.asr.model, cfg.asr.threads, cfg.asr.beam_size)
        if speech:
            e.tts = PiperTts(store, cfg.tts.voice, cfg.tts.length_scale)
        return e


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
        self.understander = TemplateUnderstander(self.registry, cfg.language,
                                                 strip_prefixes=(phrase, phrase.split()[-1]))
        self.custom = CustomIntents(custom_grammar(cfg), cfg.language)
        self._custom_words = self.custom.vocabulary()
        self.events.subscribe(self._publish_status)
        self._listen = ThreadPoolExecutor(1, thread_name_prefix="listen")  # wake word + VAD
        self._asr = ThreadPoolExecutor(1, thread_name_prefix="asr")
        self._tts = ThreadPoolExecutor(1, thread_name_prefix="tts")
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

    async def run(self, source) -> None:
        """Listen to a source until it ends (a file) or forever (a microphone)."""
        self._set_state("idle")
        ep: Endpointer | None = None
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
            metrics.endpoint_reason, metrics.hangover_s = end.reason, end.hangover_s
            metrics.utterance_s = len(end.audio) / SAMPLE_RATE
            if end.reason != "no_speech":
                await self._turn(end.audio, metrics)
            self.engines.wake.reset()
            refractory_until = now_s + self.cfg.wake.refractory_s
            source.flush()  # what the mic heard while we were busy, our own voice included, is stale
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

    def _new_endpointer(self) -> Endpointer:
        c = self.cfg.listen
        return Endpointer(threshold=c.vad_threshold, silence_s=c.silence_ms / 1000,
                          start_timeout_s=c.start_timeout_s, max_s=c.max_seconds)

    async def _turn(self, audio: np.ndarray, m: TurnMetrics) -> None:
        t0 = time.perf_counter()
        self._set_state("thinking")
        text = await self._run(self._asr, self.engines.asr.transcribe, audio, self.hotwords)
        m.asr_s = time.perf_counter() - t0
        self.events.emit("transcript", text=text, seconds=round(m.utterance_s, 2))
        if not text.strip():
            return
        outcome = await self.handle_text(text, m, t0)
        await self.speak(outcome.reply, m, t0)
        self.events.emit("turn", metrics=m)

    # -- understanding and action -------------------------------------------------------------------

    async def handle_text(self, text: str, m: TurnMetrics | None = None, t0: float | None = None) -> Outcome:
        m = m or TurnMetrics()
        t0 = t0 if t0 is not None else time.perf_counter()
        t = time.perf_counter()
        intent = await asyncio.to_thread(self._understand, text)
        m.understand_s = time.perf_counter() - t
        if intent and intent.source == "custom":  # the user's own intent: its message is the action
            outcome = Outcome(self.custom.reply(intent), commands=tuple(self._intent_messages(intent)), intent=intent)
        else:
            outcome = plan(intent, self.registry, self.home.states) if intent else Outcome("Sorry, I didn't understand that.", ok=False)
        if intent:
            self.events.emit("intent", intent=intent)
        if outcome.commands:
            outcome = await self._act(outcome, m)
            m.to_publish_s = time.perf_counter() - t0
        self.events.emit("outcome", outcome=outcome)
        return outcome

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

    async def speak(self, text: str, m: TurnMetrics | None = None, t0: float | None = None) -> None:
        if self.sink is None or self.engines.tts is None:
            return
        m = m or TurnMetrics()
        t0 = t0 if t0 is not None else time.perf_counter()
        self._set_state("speaking")
        t = time.perf_counter()
        sentences = self.engines.tts.sentences(text)
        rate = self.engines.tts.sample_rate
        while (pcm := await self._run(self._tts, next, sentences, None)) is not None:
            if m.tts_first_audio_s is None:
                m.tts_first_audio_s = time.perf_counter() - t
                m.to_first_audio_s = time.perf_counter() - t0
            m.reply_audio_s += len(pcm) / rate
            await self.sink.play(pcm, rate)
        m.tts_total_s = time.perf_counter() - t
        await self.sink.end_of_reply()
        self.events.emit("reply", text=text)

    def close(self) -> None:
        for pool in (self._listen, self._asr, self._tts):
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

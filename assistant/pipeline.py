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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from .config import Config
from .endpoint import Endpointer
from .events import EventBus, TurnMetrics
from .home.actions import plan
from .home.registry import Registry
from .models import ModelStore
from .mqtt_link import MqttError, MqttLink
from .types import SAMPLE_RATE, Intent, Outcome
from .understand.templates import TemplateUnderstander

log = logging.getLogger(__name__)


YES = re.compile(r"^(yes|yeah|yep|sure|please|do it|ok|okay|correct|right)\b")
NO = re.compile(r"^(no|nope|don't|do not|cancel|never mind|stop)\b")


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
        self.registry = Registry.from_config(cfg.device)
        phrase = wake_phrase(cfg.wake.model)
        self.understander = TemplateUnderstander(self.registry, cfg.language,
                                                 strip_prefixes=(phrase, phrase.split()[-1]),
                                                 fuzzy=cfg.understand.fuzzy)
        self.pending: Intent | None = None  # asked back about; a "yes" in the next turn carries it out
        self.hotwords = self.registry.asr_hint() if cfg.asr.hints else None
        self.topic = f"{cfg.mqtt.topic_prefix}/{cfg.site}"
        self._listen = ThreadPoolExecutor(1, thread_name_prefix="listen")  # wake word + VAD
        self._asr = ThreadPoolExecutor(1, thread_name_prefix="asr")
        self._tts = ThreadPoolExecutor(1, thread_name_prefix="tts")
        self.state = "idle"
        self.wake_cpu_s = 0.0  # CPU spent on the wake word, over wake_frames frames (for the benchmark)
        self.wake_frames = 0
        self.frames_heard = 0

    # -- state and events -------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self.events.emit("state", state=state)
        if self.link:
            self.link.publish_nowait(f"{self.topic}/state", state, retain=True)

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
        ep: Endpointer | None = self._new_endpointer() if awake else None
        metrics = TurnMetrics()
        refractory_until = 0.0
        async for frame in source.frames():
            self.frames_heard += 1
            now_s = self.frames_heard * len(frame) / SAMPLE_RATE
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
            else:
                self.pending = None  # a question left unanswered is dropped
            self.engines.wake.reset()
            refractory_until = now_s + self.cfg.wake.refractory_s
            source.flush()  # what the mic heard while we were busy, our own voice included, is stale
            if self.pending is not None:  # we asked a question: listen for the answer without a wake word
                self.engines.vad.reset()
                ep, metrics = self._new_endpointer(), TurnMetrics()
                self._set_state("listening")
                continue
            self._set_state("idle")

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
        pending, self.pending = self.pending, None
        answer = self.understander.clean(text)
        if pending is not None and (YES.match(answer) or NO.match(answer)):
            intent = pending if YES.match(answer) else None
            if intent is None:
                return self._done(Outcome("OK, I won't.", ok=False, intent=pending))
            intent = dataclasses.replace(intent, confidence=1.0)  # confirmed by the user
        else:
            intent = await asyncio.to_thread(self.understander.understand, text)
        m.understand_s = time.perf_counter() - t
        outcome = self._decide(intent)
        if intent and intent.confidence >= self.cfg.understand.ask_threshold:
            self.events.emit("intent", intent=intent)
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
        outcome = plan(intent, self.registry)
        weighty = any(d.domain in u.confirm_domains for c in outcome.commands if (d := self.registry.get(c.device_id)))
        if outcome.commands and (intent.confidence < u.act_threshold or weighty):
            self.pending = intent
            self.events.emit("ask", intent=intent)
            return Outcome(f"Should I {intent.text}?", ok=False, intent=intent)
        return outcome

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
        self._publish_intent(outcome.intent)
        return outcome

    def _publish_intent(self, intent: Intent | None) -> None:
        """Recognised intents on a topic of our own, for automations (see docs/mqtt.md)."""
        if intent is None or self.link is None:
            return
        body = {k: v for k, v in asdict(intent).items() if v not in (None, (), {}, False) or k == "all_devices"}
        body["site"] = self.cfg.site
        self.link.publish_nowait(f"{self.topic}/intent/{intent.name}", json.dumps(body, default=list))

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

"""The conductor: sequences each turn and the conversation between turns, and nothing else.

frames ─▶ wake word ─▶ endpointing ─▶ Turn: hear ─▶ understand ─▶ act (MQTT) ─▶ speak
Data flows one way; stages never call back into earlier ones. Model work runs on one worker thread per
engine, never on the event loop. What each stage does lives elsewhere: turn.py (one command),
understand/understanding.py (decisions and asking back), handlers/ (what an intent does), presence.py
(the box on the broker), audio/player.py (sound out). docs/architecture.md draws it.
"""

from __future__ import annotations

import time

import numpy as np

from . import handlers
from .audio.player import Player
from .config import Config, state_dir
from .endpoint import Endpointer
from .engines.load import Engines, make_brain
from .events import EventBus, Kind, TurnMetrics
from .home.live import Home
from .models import ModelStore
from .mqtt_link import MqttLink
from .presence import Presence
from .timers import Timers
from .turn import Parts, Turn
from .types import SAMPLE_RATE, Outcome
from .understand.custom import CustomIntents
from .understand.custom import from_config as custom_grammar
from .understand.rescore import Heard
from .understand.understanding import Understanding
from .workers import Workers

FRAMES_STALL_S = 10.0  # between turns, a microphone this long without a frame is gone or hung
RING_LISTEN_S = 4.0  # after each ring of a timer, how long "stop" is heard without the wake word


class Ears:
    """The wake word and the endpointer over the incoming frames, with the wake word's CPU counted for
    the benchmark. Called on the listen worker."""

    def __init__(self, cfg: Config, engines: Engines):
        self.cfg, self.wake, self.vad = cfg, engines.wake, engines.vad
        self.cpu_s = 0.0
        self.frames = 0  # scored for the wake word
        self.heard_s = 0.0  # audio taken in all, the clock of wake events and the refractory time
        self.frame_at: float | None = None  # when the last frame came in (monotonic)

    def count(self, frame: np.ndarray) -> float:
        """Every frame taken in, listened to or not; returns the input's clock."""
        self.frame_at = time.monotonic()
        self.heard_s += len(frame) / SAMPLE_RATE
        return self.heard_s

    def wake_score(self, frame: np.ndarray) -> float:
        t = time.process_time()
        s = self.wake.score(frame)
        self.cpu_s += time.process_time() - t
        self.frames += 1
        return s

    def command(self, start_timeout_s: float | None = None) -> Endpointer:
        """A fresh endpointer (and VAD) for a command that starts now."""
        self.vad.reset()
        c = self.cfg.listen
        return Endpointer(threshold=c.vad_threshold, silence_s=c.silence_ms / 1000,
                          start_timeout_s=start_timeout_s or c.start_timeout_s, max_s=c.max_seconds)


class Assistant:
    """Makes the parts once, then runs the conversation: waits for the wake word, hands each command to
    a `Turn`, listens for an answer without the wake word after a question (and for "stop" after a
    timer's ring), and takes mute, announcements and rings only between turns."""

    def __init__(self, cfg: Config, engines: Engines, link: MqttLink | None, sink=None,
                 events: EventBus | None = None):
        self.cfg, self.engines, self.link = cfg, engines, link
        self.events = events or EventBus()
        self.home = Home(cfg)
        self.timers = Timers(state_dir(cfg), self.events)
        self.presence = Presence(cfg, link, self.events, self.timers)
        custom = CustomIntents(custom_grammar(cfg), cfg.language)
        self.workers = Workers()
        self.player = Player(sink, engines.tts, self.workers)
        self.understanding = Understanding(cfg, self.home.registry, custom,
                                           handlers.for_home(cfg, self.home, custom, self.timers, self.player).plan)
        self.ears = Ears(cfg, engines)
        if cfg.llm.route != "templates" and engines.brain is None:
            engines.brain = make_brain(cfg, ModelStore(cfg.models_dir or None))
        if engines.brain is not None:
            engines.brain.registry = self.home.registry  # the live one, with discovered devices
        self.parts = Parts(cfg, engines, self.understanding, self.player, link, self.events, self.workers)
        self.muted = False  # the wake word is ignored; announcements are still spoken
        self.busy = False  # in a turn or speaking: the audio loop takes no frames meanwhile
        if link:
            self.home.attach(link)

    def _state(self, state: str) -> None:
        self.events.emit(Kind.STATE, state=state)

    async def run(self, source, awake: bool = False) -> None:
        """Listen to a source until it ends (a file) or forever (a microphone). `awake`: the source starts
        with the command itself, as if the wake word had just been heard."""
        self._state("idle")
        ep: Endpointer | None = self.ears.command() if awake else None  # what it heard before is not part of it
        metrics, refractory_until = TurnMetrics(), 0.0
        async for frame in source.frames():
            heard_s = self.ears.count(frame)
            if ep is None and await self._between_turns():
                source.flush()  # it heard itself
                if self.timers.ringing():  # "stop" needs no wake word while a timer rings
                    metrics, ep = TurnMetrics(), self.ears.command(start_timeout_s=RING_LISTEN_S)
                    self._state("listening")
                    continue
            if ep is None and self.muted:
                continue
            if ep is None:
                score = await self.workers.run("listen", self.ears.wake_score, frame)
                if score < self.cfg.wake.threshold or heard_s < refractory_until:
                    continue
                metrics = TurnMetrics(wake_score=score, wake_audio_s=heard_s)
                self.events.emit(Kind.WAKE, score=round(score, 3), at_s=round(heard_s, 2))
                ep = self.ears.command()
                self._state("listening")
                continue
            end = ep.feed(frame, await self.workers.run("listen", self.ears.vad.probabilities, frame))
            if end is None:
                continue
            ep = None
            metrics.note_endpoint(end)
            if end.reason == "no_speech":
                self.understanding.forget()
                spoken = ""
            else:
                spoken = await self._turn(end.audio, metrics)
            source.flush()  # what the mic heard while we were busy, our own voice included, is stale
            if self._asked(spoken):  # listen for the answer without the wake word
                metrics = TurnMetrics()
                ep = self.ears.command(start_timeout_s=self.cfg.llm.follow_up_s or None)
                self._state("listening")
                continue
            self.ears.wake.reset()
            refractory_until = heard_s + self.cfg.wake.refractory_s
            self._state("idle")
        end = ep.finish() if ep is not None else None
        if end is not None:  # a file that ends mid-command, or before the noise after it let up
            metrics.note_endpoint(end)
            await self._turn(end.audio, metrics)
            self._state("idle")

    def alive(self) -> str | None:
        """For the watchdog: why the conductor is not alive, or None. Between turns frames must come in;
        during one, its worker calls must move on."""
        if self.busy:
            return self.workers.stalled()
        if self.ears.frame_at is None:
            return "waiting for the first audio frame"
        if (quiet := time.monotonic() - self.ears.frame_at) > FRAMES_STALL_S:
            return f"no audio frames for {quiet:.0f} s"
        return None

    def _asked(self, spoken: str) -> bool:
        """The assistant asked back, or the LLM's answer ended in a question."""
        return self.understanding.pending is not None or (
            spoken.rstrip().endswith("?") and self.cfg.llm.follow_up_s > 0)

    async def _between_turns(self) -> bool:
        """Mute and announcements from the broker, and finished timers ringing, only ever between turns.
        True if it spoke."""
        spoke = False
        for kind, value in self.presence.inbox.take() + self.timers.take():
            if kind == "mute":
                self.muted = bool(value)
                self.events.emit(Kind.MUTE, muted=self.muted)
                self._state("idle")
            elif kind == "say":
                self.events.emit(Kind.ANNOUNCEMENT, text=value)
                await self._announce(str(value))
                spoke = True
            elif kind == "ring":
                await self._announce(f"Your {value.label} is done.", chime=True)
                spoke = True
        if spoke:
            self.ears.wake.reset()
            self._state("idle")
        return spoke

    async def _announce(self, text: str, chime: bool = False) -> None:
        turn, self.busy = Turn(self.parts), True
        try:
            if chime and self.player.speaks:
                await self.player.chime()
            await turn.speak(text)
        except Exception as e:  # noqa: BLE001 - the voice or the speaker failed
            await turn.failed(e, apologise=False)
        finally:
            self.busy = False

    async def _turn(self, audio: np.ndarray, metrics: TurnMetrics) -> str:
        """One command, heard to answered; returns what was said back. A part that fails (the recogniser,
        the voice, the speaker) ends this turn with an apology, never the box."""
        turn, self.busy = Turn(self.parts, metrics), True
        try:
            text, heard = await turn.hear(audio)
            if not text.strip():
                return ""
            outcome = await turn.act(await turn.understand(text, heard, spoken=True))
            spoken = await turn.speak(outcome.speech or outcome.reply)
        except Exception as e:  # noqa: BLE001 - whatever a model or a device raises
            return await turn.failed(e)
        finally:
            self.busy = False
        self.events.emit(Kind.TURN, metrics=metrics)
        return spoken

    async def handle_text(self, text: str, heard: Heard | None = None) -> Outcome:
        """A typed request, understood and carried out like a spoken one; `heard`: the close listening's
        reading, when the text came from audio."""
        turn = Turn(self.parts)
        return await turn.act(await turn.understand(text, heard))

    async def speak(self, text) -> str:
        return await Turn(self.parts).speak(text)

    def close(self) -> None:
        self.workers.close()

"""The conductor: sequences each turn and the conversation between turns, and nothing else.

frames ─▶ wake word ─▶ endpointing ─▶ Turn: hear ─▶ understand ─▶ act (MQTT) ─▶ speak
Data flows one way; stages never call back into earlier ones. Model work runs on one worker thread per
engine, never on the event loop. What each stage does lives elsewhere: turn.py (one command),
understand/understanding.py (decisions and asking back), handlers/ (what an intent does), presence.py
(the box on the broker), audio/player.py (sound out). docs/architecture.md draws it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from . import arbitration, handlers
from .ahead import HearingAhead
from .arbitration import Arbiter, Decision
from .audio.player import Player
from .audio.sounds import Sounds
from .config import Config, state_dir
from .endpoint import Endpointer
from .engines.load import Engines, make_brain
from .events import EventBus, Kind, TurnMetrics
from .home.live import Home
from .interrupt import Cut, Interrupter
from .models import ModelStore
from .mqtt_link import MqttLink
from .presence import Presence
from .timers import Timers
from .turn import Parts, Turn, recognise
from .types import SAMPLE_RATE, Outcome
from .understand.custom import CustomIntents
from .understand.custom import from_config as custom_grammar
from .understand.fuzzy import NUM, words
from .understand.rescore import Heard, as_spoken
from .understand.understanding import Understanding
from .workers import Workers

log = logging.getLogger(__name__)
FRAMES_STALL_S = 10.0  # between turns, a source this long without a frame is hung (a microphone that
# stops is opened again by MicSource, which gives silence meanwhile)
RING_LISTEN_S = 4.0  # after each ring of a timer, how long "stop" is heard without the wake word
LEVEL_FRAMES = 12  # the last second of frames: the wake word's speech level is taken from them
AHEAD_BATCH = 16  # sentences weighed against silence at a time at start (about 80 ms on two cores)


class Frames:
    """The source's frames, with room to give back frames taken early (those after a wake word that cut
    a reply: the command that follows starts in them), and a word between two frames when a reading
    ahead is done (None instead of a frame): a whole command is then acted on at once, not a frame later."""

    def __init__(self, source):
        self.frames = aiter(source.frames())
        self.given_back: deque[np.ndarray] = deque()
        self.coming: asyncio.Task | None = None  # the source's next frame, while a reading is awaited too
        self.reading: asyncio.Future | None = None

    def __aiter__(self):
        return self

    async def __anext__(self) -> np.ndarray | None:
        if self.given_back:
            return self.given_back.popleft()
        if self.reading is not None:
            if self.coming is None:
                self.coming = asyncio.ensure_future(anext(self.frames))
            await asyncio.wait([self.coming, self.reading], return_when=asyncio.FIRST_COMPLETED)
            reading, self.reading = self.reading, None
            if not self.coming.done() and reading.done():
                return None
        if self.coming is not None:
            coming, self.coming = self.coming, None
            return await coming
        return await anext(self.frames)

    def give_back(self, frames: list[np.ndarray]) -> None:
        self.given_back.extend(frames)

    def until(self, reading: asyncio.Future | None) -> None:
        """The next frame, or None as soon as this reading is done if it comes first."""
        self.reading = reading if reading is not None and not reading.done() else None

    def close(self) -> None:
        if self.coming is not None:
            self.coming.cancel()


class Ears:
    """The wake words and the endpointer over the incoming frames, with the wake words' CPU counted for
    the benchmark, and the speech level of the last second (for the boxes' agreement on who answers).
    Called on the listen worker."""

    def __init__(self, cfg: Config, engines: Engines):
        self.cfg, self.wake, self.vad = cfg, engines.wake, engines.vad
        self.cpu_s = 0.0
        self.frames = 0  # scored for the wake word
        self.heard_s = 0.0  # audio taken in all, the clock of wake events and the refractory time
        self.frame_at: float | None = None  # when the last frame came in (monotonic)
        self.energies: deque[float] = deque(maxlen=LEVEL_FRAMES)  # each frame's mean square

    def count(self, frame: np.ndarray) -> float:
        """Every frame taken in, listened to or not; returns the input's clock."""
        self.frame_at = time.monotonic()
        self.heard_s += len(frame) / SAMPLE_RATE
        f = frame.astype(np.float32)
        self.energies.append(float(np.dot(f, f)) / max(len(f), 1))
        return self.heard_s

    def level_db(self) -> float:
        """The speech level of the last second, dBFS (the wake word's, when it has just fired)."""
        return arbitration.level_db(self.energies)

    def wake_score(self, frame: np.ndarray) -> tuple[str, float]:
        """The wake word that scores highest on this frame, and its score."""
        t = time.process_time()
        scores = self.wake.scores(frame)
        self.cpu_s += time.process_time() - t
        self.frames += 1
        word = max(scores, key=scores.__getitem__)
        return word, scores[word]

    def command(self, start_timeout_s: float | None = None) -> Endpointer:
        """A fresh endpointer (and VAD) for a command that starts now."""
        self.vad.reset()
        c = self.cfg.listen
        return Endpointer(threshold=c.vad_threshold, silence_s=c.silence_ms / 1000,
                          start_timeout_s=start_timeout_s or c.start_timeout_s, max_s=c.max_seconds)


@dataclass
class Waking:
    """A wake word heard, while the boxes on the broker agree on which one answers it."""

    word: str
    score: float
    at_s: float  # position in the input
    metrics: TurnMetrics
    task: asyncio.Future[Decision]
    settled: bool = False  # the outcome was told (events, the listening sound)

    def won(self) -> bool:
        return self.task.cancelled() or self.task.result().won


class Assistant:
    """Makes the parts once, then runs the conversation: waits for the wake word, hands each command to
    a `Turn` (when the other boxes on the broker agree that this one answers), listens for an answer
    without the wake word after a question (and for "stop" after a timer's ring), and takes mute,
    announcements and rings only between turns."""

    def __init__(self, cfg: Config, engines: Engines, link: MqttLink | None, sink=None,
                 events: EventBus | None = None):
        self.cfg, self.engines, self.link = cfg, engines, link
        self.events = events or EventBus()
        self.home = Home(cfg)
        self.timers = Timers(state_dir(cfg), self.events)
        self.presence = Presence(cfg, link, self.events, self.timers)
        custom = CustomIntents(custom_grammar(cfg), cfg.language)
        self.workers = Workers()
        sounds = Sounds(engines.tts.sample_rate, cfg.sounds.own()) if sink is not None and engines.tts else None
        self.player = Player(sink, engines.tts, self.workers, sounds=sounds, cues=cfg.sounds.enabled)
        self.understanding = Understanding(cfg, self.home.registry, custom,
                                           handlers.for_home(cfg, self.home, custom, self.timers, self.player).plan)
        if self.understanding.steers(engines.asr):
            engines.asr.steerable()  # its decoder loaded now (about half a second), not on the first order
        self.ears = Ears(cfg, engines)
        self.interrupter = Interrupter(self.ears, engines.asr, self.workers, cfg.wake.threshold,
                                       cfg.listen.vad_threshold, self._stops,
                                       {w.name: w.phrase for w in cfg.wake.entries()})
        self.ahead = HearingAhead(lambda audio: recognise(self.parts, audio), self.understanding.whole,
                                  enabled=cfg.listen.early)
        self.cut: Cut | None = None  # what cut the last turn or announcement short
        self.after_cut: list[np.ndarray] = []  # frames heard after a wake word cut a reply
        if cfg.llm.route != "templates" and engines.brain is None:
            engines.brain = make_brain(cfg, ModelStore(cfg.models_dir or None))
        if engines.brain is not None:
            engines.brain.registry = self.home.registry  # the live one, with discovered devices
        self.parts = Parts(cfg, engines, self.understanding, self.player, link, self.events, self.workers)
        self.arbiter = Arbiter(cfg, link)
        self.waking: Waking | None = None  # the wake word whose command is being taken in, until agreed on
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
        self.waking = None  # one the last run left undecided is over
        frames = Frames(source)
        try:
            await self._listen(source, frames, awake)
        finally:
            frames.close()

    async def _listen(self, source, frames: Frames, awake: bool) -> None:
        ep: Endpointer | None = self._command() if awake else None  # what it heard before is not part of it
        metrics, refractory_until = TurnMetrics(), 0.0
        async for frame in frames:
            if frame is None:  # a reading ahead is done between two frames: it may end the command now
                if ep is None or (end := await self.ahead.step(ep, source.realtime)) is None:
                    continue
            else:
                heard_s = self.ears.count(frame)
                if ep is not None and self._lost():  # another box answers: back to the wake word, silently
                    ep = None
                    self.ahead.forget()
                    self.ears.wake.reset()
                    refractory_until = heard_s + self.cfg.wake.refractory_s
                    continue
                if ep is None and await self._between_turns(source, frames):
                    source.flush()  # it heard itself
                    if self._cut_by() is Cut.WAKE:
                        metrics, ep = self._barge_in(frames)
                        continue
                    if self.timers.ringing():  # "stop" needs no wake word while a timer rings
                        metrics, ep = TurnMetrics(), self._command(start_timeout_s=RING_LISTEN_S)
                        self._state("listening")
                        continue
                if ep is None and self.muted:
                    continue
                if ep is None:
                    word, score = await self.workers.run("listen", self.ears.wake_score, frame)
                    if score < self.cfg.wake.threshold or heard_s < refractory_until:
                        continue
                    metrics, ep = self._woke(word, score, heard_s)
                    continue
                end = ep.feed(frame, await self.workers.run("listen", self.ears.vad.probabilities, frame))
                if end is None and (end := await self.ahead.step(ep, source.realtime)) is None:
                    frames.until(self.ahead.under_way() if source.realtime else None)
                    continue
            ep = None
            if not await self._answers():  # another box heard the wake word better
                self.ahead.forget()
                self.ears.wake.reset()
                refractory_until = heard_s + self.cfg.wake.refractory_s
                continue
            if end.reason == "no_speech":
                metrics.note_endpoint(end)
                self.understanding.forget()
                self.player.cue("error")
                spoken = ""
            else:
                heard_ahead = await self.ahead.at_end(end, source.realtime)
                metrics.note_endpoint(end)
                self.player.cue("done")
                spoken = await self._while_listening(self._turn(end.audio, metrics, heard_ahead), source, frames)
            source.flush()  # what the mic heard while we were busy, our own voice included, is stale
            if (cut := self._cut_by()) is Cut.WAKE:
                metrics, ep = self._barge_in(frames)
                continue
            if cut is None and self._asked(spoken):  # listen for the answer without the wake word
                metrics = TurnMetrics()
                ep = self._command(start_timeout_s=self.cfg.llm.follow_up_s or None)
                self._state("listening")
                continue
            self.ears.wake.reset()
            refractory_until = heard_s + self.cfg.wake.refractory_s
            self._state("idle")
        end = ep.finish() if ep is not None else None
        # a file that ends mid-command, or before the noise after it let up
        if end is not None and await self._answers():
            metrics.note_endpoint(end)
            await self._turn(end.audio, metrics)
            self._state("idle")

    def _command(self, start_timeout_s: float | None = None) -> Endpointer:
        """A command starts now: a fresh endpointer, and nothing heard ahead of it."""
        self.ahead.forget()
        return self.ears.command(start_timeout_s)

    def _woke(self, word: str, score: float, heard_s: float) -> tuple[TurnMetrics, Endpointer]:
        """The wake word was heard: the command is taken in from now on, while the boxes on the broker agree
        on which one answers (arbitration.py). The wake event, the listening sound and the state wait for
        the agreement: a box that does not answer makes no sound."""
        metrics = TurnMetrics(wake_score=score, wake_audio_s=heard_s)
        task = asyncio.ensure_future(self.arbiter.agree(score, self.ears.level_db()))
        waking = self.waking = Waking(word, score, heard_s, metrics, task)
        task.add_done_callback(lambda _: self._settle(waking))
        return metrics, self._command()

    def _settle(self, waking: Waking) -> None:
        """The boxes agreed: tell it, once. The box that answers listens from now on, audibly."""
        if waking.settled or waking.task.cancelled():
            return
        waking.settled = True
        decision = waking.task.result()
        waking.metrics.agree_s = decision.waited_s
        self.events.emit(Kind.ARBITRATION, **decision.summary())
        if decision.won:
            self.events.emit(Kind.WAKE, word=waking.word, score=round(waking.score, 3), at_s=round(waking.at_s, 2))
            self.player.cue("listening")
            self._state("listening")

    def _lost(self) -> bool:
        """Another box answers the wake word whose command is being taken in."""
        waking = self.waking
        if waking is None or not waking.task.done():
            return False
        self._settle(waking)
        if waking.won():
            return False
        self.waking = None
        return True

    async def _answers(self) -> bool:
        """A command was taken in: whether this box answers it, once the boxes agree (they have, unless the
        command was shorter than the window); counted as the turn's delay."""
        waking, self.waking = self.waking, None
        if waking is None:  # no wake word started it: an answer, "stop" after a ring
            return True
        t = time.perf_counter()
        await asyncio.wait({waking.task})
        waking.metrics.agree_wait_s = time.perf_counter() - t
        self._settle(waking)
        return waking.won()

    def _barge_in(self, frames: Frames) -> tuple[TurnMetrics, Endpointer]:
        """The wake word cut a reply: a new command, starting in the frames heard since, if the boxes
        agree that this one answers it."""
        frames.give_back(self.after_cut)
        self.after_cut = []
        word, score = self.interrupter.woke_by
        return self._woke(word, score, self.ears.heard_s)

    def _cut_by(self) -> Cut | None:
        """What cut the last turn or announcement short, once; a "stop" also ends a question asked and
        a timer's ringing."""
        cut, self.cut = self.cut, None
        if cut is Cut.STOP:
            self.understanding.forget()
            self.timers.stop_ringing()
        return cut

    def _stops(self, text: str) -> bool:
        intent = self.understanding.lookup(text)
        return intent is not None and intent.name == "HassNevermind"

    async def _while_listening(self, work, source, frames: Frames):
        """Runs a turn or an announcement. On a live source the microphone is heard meanwhile: while the
        box plays, the wake word or "stop" cuts it short (interrupt.py)."""
        task = asyncio.ensure_future(work)
        if not source.realtime or self.engines.asr is None:
            return await task
        self.player.begin()
        self.interrupter.start()
        next_frame = None
        try:
            while not task.done():
                next_frame = next_frame or asyncio.ensure_future(anext(frames, None))
                await asyncio.wait({task, next_frame}, return_when=asyncio.FIRST_COMPLETED)
                if not next_frame.done():
                    continue
                frame, next_frame = next_frame.result(), None
                if frame is None:  # the source ended
                    break
                await self._hear_while_playing(frame)
            if next_frame is not None:  # a frame being read is let finish: the source goes on after it
                if (frame := await next_frame) is not None and self.cut is Cut.WAKE:
                    self.after_cut.append(frame)
            return await task
        finally:
            self.player.begin()  # the cut ends with this turn

    async def _hear_while_playing(self, frame: np.ndarray) -> None:
        self.ears.count(frame)
        if self.cut is Cut.WAKE:
            self.after_cut.append(frame)
        elif self.cut is None and self.player.speaking:
            self.cut = await self.interrupter.hear(frame, self.player.saying)
            if self.cut is not None:
                self.player.interrupt()
                self.events.emit(Kind.INTERRUPTED, by=str(self.cut))

    async def _between_turns(self, source, frames: Frames) -> bool:
        """Mute and announcements from the broker, and finished timers ringing, only ever between turns.
        True if it spoke."""
        spoke = False
        for kind, value in self.presence.inbox.take() + self.timers.take():
            if kind == "mute":
                self.muted = bool(value)
                self.events.emit(Kind.MUTE, muted=self.muted)
                self._state("idle")
            elif self.cut is not None:  # the user said stop, or is speaking: the rest is not said
                log.info("not said, cut short: %s %s", kind, value)
            else:
                if kind == "say":
                    self.events.emit(Kind.ANNOUNCEMENT, text=value)
                text = str(value) if kind == "say" else f"Your {value.label} is done."
                await self._while_listening(self._announce(text, ring=kind == "ring"), source, frames)
                spoke = True
        if spoke:
            self.ears.wake.reset()
            self._state("idle")
        return spoke

    async def _announce(self, text: str, ring: bool = False) -> None:
        turn, self.busy = Turn(self.parts), True
        try:
            if ring and self.player.speaks:
                await self.player.ring()
            await turn.speak(text)
        except Exception as e:  # noqa: BLE001 - the voice or the speaker failed
            await turn.failed(e, apologise=False)
        finally:
            self.busy = False

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

    async def _turn(self, audio: np.ndarray, metrics: TurnMetrics, heard_ahead=None) -> str:
        """One command, heard to answered; returns what was said back. A part that fails (the recogniser,
        the voice, the speaker) ends this turn with an apology, never the box."""
        turn, self.busy = Turn(self.parts, metrics), True
        try:
            text, heard = await turn.hear(audio, heard_ahead)
            if not words(text):  # nothing, or only the dots Whisper writes for a click or a hiss
                return ""
            outcome = await turn.act(await turn.understand(text, heard, spoken=True))
            spoken = await turn.speak(outcome.speech or outcome.reply)
        except Exception as e:  # noqa: BLE001 - whatever a model or a device raises
            return await turn.failed(e)
        finally:
            self.busy = False
        self.events.emit(Kind.TURN, metrics=metrics)
        return spoken

    async def prepare_replies(self) -> int:
        """Synthesizes the home's on/off confirmations ahead, so that they play at once; at start, on the
        voice's worker. Returns how many were made."""
        snap = self.understanding.templates.snap
        replies = []
        for sentence in snap.keys if snap is not None and self.player.speaks else ():
            if sentence.startswith(("turn on ", "turn off ")):
                intent = self.understanding.lookup(sentence)
                if intent is not None and (outcome := self.understanding.plan(intent)).commands:
                    replies.append(outcome.reply)
        return await self.workers.run("tts", self.player.prepare, dict.fromkeys(replies))

    async def prepare_listening(self) -> int:
        """Weighs the home's sentences against silence ahead (rescore.py: each fit has half of that taken
        off), so that its first commands cost no more than later ones; at start, a few at a time on the
        recogniser's worker, so that a command meanwhile waits for one batch at most. Returns how many."""
        asr, snap = self.engines.asr, self.understanding.templates.snap
        if snap is None or not self.cfg.understand.check or not self.understanding.listens_closely(asr):
            return 0
        texts = [as_spoken(s) for s in snap.keys if NUM not in s]  # a number is filled in as said
        for i in range(0, len(texts), AHEAD_BATCH):
            await self.workers.run("asr", asr.prior, texts[i:i + AHEAD_BATCH])
        return len(texts)

    async def handle_text(self, text: str, heard: Heard | None = None) -> Outcome:
        """A typed request, understood and carried out like a spoken one; `heard`: the close listening's
        reading, when the text came from audio."""
        turn = Turn(self.parts)
        return await turn.act(await turn.understand(text, heard))

    async def speak(self, text) -> str:
        return await Turn(self.parts).speak(text)

    def close(self) -> None:
        self.workers.close()

"""Home Assistant's voice services over the Wyoming protocol: what each request does.

asr: transcribe + audio -> transcript; tts: synthesize (or synthesize-start/chunk/stop) -> audio;
intent: recognize -> intent; handle: transcript -> handled, carried out like a typed request; wake:
detect + audio -> detection; describe -> info. Models are only ever called through the box's workers,
and requests from Home Assistant have an understanding of their own, so a question the box asked aloud
is not answered by a typed request from elsewhere. wyoming_server.py carries the events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)
from wyoming.intent import Entity, NotRecognized
from wyoming.intent import Intent as WyomingIntent
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStopped
from wyoming.wake import Detect, Detection, NotDetected

from . import __version__
from .audio.player import Player
from .config import WakeEntry
from .models import Model, ModelStore
from .pipeline import Assistant
from .turn import Turn
from .types import FRAME_SAMPLES, SAMPLE_RATE, Intent, Source
from .understand.understanding import Understanding
from .wyoming_events import Refused

MAX_AUDIO_S = 30.0  # audio buffered for one transcription
MAX_TEXT = 10_000  # characters of text to speak or understand in one request
CHUNK_SAMPLES = 1024  # audio sent per audio-chunk
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
Write = Callable[[Event], Awaitable[None]]


class Services:
    """What every connection shares: the assistant's models, workers and home, and one understanding for
    all of Home Assistant's requests (a question it asks back is answered on the next connection)."""

    def __init__(self, assistant: Assistant, store: ModelStore):
        a = assistant
        self.cfg, self.store, self.workers, self.engines = a.cfg, store, a.workers, a.engines
        # Home Assistant's requests come from wherever its satellites are, not from the box's own room
        self.understanding = Understanding(a.cfg, a.home.registry, a.understanding.custom, a.understanding.plan,
                                           here="")
        # a silent player: the reply goes back to Home Assistant as text, not out of the box's speaker
        self.parts = dataclasses.replace(a.parts, understanding=self.understanding,
                                         player=Player(None, a.engines.tts, a.workers))
        self.thinking = asyncio.Lock()  # one request at a time through the understanding, from any thread
        self.info = describe(a.cfg, store)

    async def hear(self, pcm: np.ndarray) -> str:
        """The pipeline's listening: the readings weighed against the home's sentences when it listens
        closely; what a sure reading matched is the transcript, else what was freely heard."""
        u, asr = self.understanding, self.engines.asr
        if not u.listens_closely(asr):
            return await self.workers.run("asr", asr.transcribe, pcm, u.hotwords)
        async with self.thinking:  # the close listening reads the understanding's sentences
            heard = await self.workers.run("asr", u.hear, asr, pcm)
        sure = heard.intent and not heard.intent.unknown_name and heard.intent.confidence >= self.cfg.understand.act_threshold
        return heard.intent.text if sure else heard.text

    def connection(self, write: Write) -> Connection:
        return Connection(self, write)


def describe(cfg, store: ModelStore) -> Info:
    """What Home Assistant makes of this box: each model with its language, version and licence."""
    lang = [cfg.language]
    ours = {"attribution": Attribution("Offline voice assistant", ""), "installed": True, "version": __version__}

    def model(name: str) -> dict:
        """One of the manifest's models, credited to where it comes from. Home Assistant shows a voice's and
        a wake word's description as its name (homeassistant/components/wyoming/tts.py, wake_word.py), so
        the description is the model's name; the licence is in the attribution."""
        m = store.model(name)
        return {"name": name, "attribution": Attribution(m.license, m.upstream), "installed": True,
                "description": name, "version": _version(m), "languages": lang}

    def own(w: WakeEntry) -> dict:
        """A wake word from the owner's own model file."""
        return {"name": w.name, "attribution": Attribution("the owner's own model", ""), "installed": True,
                "description": f"wake model {Path(w.file).name}, the owner's own", "version": None,
                "languages": lang}

    def program(name: str, description: str) -> dict:
        return {"name": name, "description": description, **ours}

    return Info(
        asr=[AsrProgram(models=[AsrModel(**model(cfg.asr.model))],
                        **program("assistant-asr", "faster-whisper, with this home's names as hints"))],
        tts=[TtsProgram(voices=[TtsVoice(**model(cfg.tts.voice))], supports_synthesize_streaming=True,
                        **program("assistant-tts", "Piper"))],
        intent=[IntentProgram(models=[IntentModel(languages=lang, **program(
                                  "templates", "Home Assistant's sentences, snapped when misheard, and this home's "
                                  "own intents"))],
                              **program("assistant-intent", "this home's sentences to Home Assistant's intents"))],
        handle=[HandleProgram(models=[HandleModel(languages=lang, **program(
                                  "assistant", f"the box's understanding (route: {cfg.llm.route})"))],
                              supports_home_control=True,
                              **program("assistant-handle", "understood and carried out over MQTT"))],
        wake=[WakeProgram(models=[WakeModel(phrase=w.phrase, **(own(w) if w.file else model(w.name)))
                                  for w in cfg.wake.entries()],
                          **program("assistant-wake", "openWakeWord, every wake word at once"))],
    )


def _version(m: Model) -> str | None:
    """The version of the package the model's files come from."""
    spec = m.files[0].parts[0].pypi if m.files else ""
    return spec.partition("==")[2] or None


def entities(intent: Intent, registry) -> list[Entity]:
    """An intent's slots as Home Assistant's intent handlers name them (name, area, domain, ...)."""
    if intent.source is Source.CUSTOM:
        return [Entity(k, v) for k, v in intent.slots.items()]
    found = [Entity("name", d.name) for i in intent.device_ids if (d := registry.get(i))]
    extra = {"area": intent.area, "domain": intent.domain, "brightness": intent.brightness, "color": intent.color}
    return found + [Entity(k, v) for k, v in extra.items() if v is not None]


class AudioOut:
    """The client as a speaker: a Player plays a reply into it as audio-start and audio-chunks."""

    def __init__(self, write: Write, rate: int):
        self.write, self.rate, self.started = write, rate, False

    async def _start(self) -> None:
        if not self.started:
            self.started = True
            await self.write(AudioStart(self.rate, 2, 1).event())

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        await self._start()
        for i in range(0, len(pcm), CHUNK_SAMPLES):
            await self.write(AudioChunk(rate, 2, 1, pcm[i:i + CHUNK_SAMPLES].astype(np.int16).tobytes()).event())

    async def end_of_reply(self) -> None:
        await self._start()
        await self.write(AudioStop().event())
        self.started = False


class Connection:
    """One client's requests, in order; audio and streamed text are kept per connection."""

    def __init__(self, services: Services, write: Write):
        self.s, self.write = services, write
        self.audio = bytearray()  # the transcription's audio so far, 16 kHz int16
        self.converter = AudioChunkConverter(rate=SAMPLE_RATE, width=2, channels=1)
        self.wake: Wake | None = None  # set by detect: the audio is listened to for the wake word
        self.streamed: str | None = None  # text of a streamed synthesis not yet spoken
        self.voice = Player(AudioOut(write, services.engines.tts.sample_rate), services.engines.tts, services.workers)
        self.handlers = {
            "describe": self._describe, "ping": self._ping, "transcribe": self._transcribe,
            "audio-start": self._audio_start, "audio-chunk": self._audio_chunk, "audio-stop": self._audio_stop,
            "synthesize": self._synthesize, "synthesize-start": self._synthesize_start,
            "synthesize-chunk": self._synthesize_chunk, "synthesize-stop": self._synthesize_stop,
            "recognize": self._recognize, "transcript": self._handle, "detect": self._detect,
        }

    async def handle(self, event: Event) -> None:
        """Unknown events are dropped, as the protocol asks."""
        if (handler := self.handlers.get(event.type)) is not None:
            await handler(event)

    async def _describe(self, event: Event) -> None:
        await self.write(self.s.info.event())

    async def _ping(self, event: Event) -> None:
        await self.write(Pong(text=Ping.from_event(event).text).event())

    # -- asr and wake: audio in --------------------------------------------------------------------------

    async def _transcribe(self, event: Event) -> None:
        self.wake = None

    async def _detect(self, event: Event) -> None:
        names = Detect.from_event(event).names
        self.wake = await asyncio.to_thread(Wake, self.s, names)  # a model of its own: it keeps the audio's state

    async def _audio_start(self, event: Event) -> None:
        self.audio.clear()
        self.converter = AudioChunkConverter(rate=SAMPLE_RATE, width=2, channels=1)

    async def _audio_chunk(self, event: Event) -> None:
        chunk = AudioChunk.from_event(event)
        if not (8000 <= chunk.rate <= 48000 and chunk.width in (1, 2, 4) and chunk.channels in (1, 2)):
            raise Refused(f"unsupported audio: {chunk.rate} Hz, {chunk.width} bytes, {chunk.channels} channels")
        pcm = self.converter.convert(chunk).audio
        if self.wake is not None:
            if (detection := await self.wake.feed(pcm)) is not None:
                await self.write(detection.event())
            return
        if len(self.audio) + len(pcm) > MAX_AUDIO_S * SAMPLE_RATE * 2:
            raise Refused(f"more than {MAX_AUDIO_S:.0f} s of audio to transcribe")
        self.audio += pcm

    async def _audio_stop(self, event: Event) -> None:
        if self.wake is not None:
            if not self.wake.detected:
                await self.write(NotDetected().event())
            return
        text = await self.s.hear(np.frombuffer(bytes(self.audio), np.int16))
        self.audio.clear()
        await self.write(Transcript(text=text, language=self.s.cfg.language).event())

    # -- tts: audio out ----------------------------------------------------------------------------------

    async def _synthesize(self, event: Event) -> None:
        if self.streamed is not None:  # sent alongside a streamed synthesis, for older servers: ignored
            return
        await self._say(Synthesize.from_event(event).text)
        await self.voice.end_of_reply()

    async def _say(self, text: str) -> None:
        if len(text) > MAX_TEXT:
            raise Refused(f"more than {MAX_TEXT} characters to speak")
        if text.strip():
            await self.voice.say(text)

    async def _synthesize_start(self, event: Event) -> None:
        self.streamed = ""

    async def _synthesize_chunk(self, event: Event) -> None:
        if self.streamed is None:
            raise Refused("synthesize-chunk without synthesize-start")
        self.streamed += SynthesizeChunk.from_event(event).text
        if len(self.streamed) > MAX_TEXT:
            raise Refused(f"more than {MAX_TEXT} characters to speak")
        *done, self.streamed = SENTENCE_END.split(self.streamed)  # whole sentences are spoken at once
        for sentence in done:
            await self._say(sentence)

    async def _synthesize_stop(self, event: Event) -> None:
        rest, self.streamed = self.streamed or "", None
        await self._say(rest)
        await self.voice.end_of_reply()
        await self.write(SynthesizeStopped().event())

    # -- intent and handle: text in ----------------------------------------------------------------------

    def _text(self, event: Event) -> str:
        text = event.data.get("text")
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise Refused(f"'text' should be a string of at most {MAX_TEXT} characters")
        return text

    async def _recognize(self, event: Event) -> None:
        """Only a sure reading is an intent: Home Assistant carries it out without asking back."""
        text, s = self._text(event), self.s
        async with s.thinking:
            intent = await asyncio.to_thread(s.understanding.lookup, text)
        if intent is None or intent.unknown_name or intent.confidence < s.cfg.understand.act_threshold:
            await self.write(NotRecognized(text=text).event())
            return
        found = entities(intent, s.understanding.registry)
        await self.write(WyomingIntent(name=intent.name, entities=found, text=intent.text).event())

    async def _handle(self, event: Event) -> None:
        """Understood, decided on and carried out like a typed request; the answer goes back as text."""
        text = self._text(event)
        async with self.s.thinking:
            turn = Turn(self.s.parts)
            outcome = await turn.act(await turn.understand(text))
            reply = await turn.speak(outcome.speech or outcome.reply)
        understood = outcome.ok or outcome.intent is not None
        await self.write((Handled if understood else NotHandled)(text=reply).event())


class Wake:
    """The wake words over one client's audio, with a model of its own scored on the wake word's worker.
    Of the box's wake words, those the client names count (all of them when it names none of them)."""

    def __init__(self, services: Services, names: list[str] | None = None):
        from .engines.wake_openwakeword import OpenWakeWord

        cfg = services.cfg.wake
        self.model = OpenWakeWord(services.store, cfg.entries())
        self.names = [n for n in names or [] if n in self.model.names] or self.model.names
        self.threshold, self.refractory_s, self.workers = cfg.threshold, cfg.refractory_s, services.workers
        self.pending = np.zeros(0, np.int16)  # less than a frame, waiting for the rest
        self.heard_s, self.quiet_until, self.detected = 0.0, 0.0, False

    async def feed(self, pcm: bytes) -> Detection | None:
        self.pending = np.concatenate([self.pending, np.frombuffer(pcm, np.int16)])
        found = None
        while len(self.pending) >= FRAME_SAMPLES:
            frame, self.pending = self.pending[:FRAME_SAMPLES], self.pending[FRAME_SAMPLES:]
            self.heard_s += FRAME_SAMPLES / SAMPLE_RATE
            scores = await self.workers.run("listen", self.model.scores, frame)
            word = max(self.names, key=scores.__getitem__)
            if scores[word] >= self.threshold and self.heard_s >= self.quiet_until:
                self.detected, self.quiet_until = True, self.heard_s + self.refractory_s
                await self.workers.run("listen", self.model.reset)
                found = Detection(name=word, timestamp=int(self.heard_s * 1000))
        return found

"""The one way sound leaves the box: spoken replies, the listening/done/error sounds and the timer's
ring, all at one volume, one at a time, and cut short at once when the user says so."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np

from .sounds import Sounds

log = logging.getLogger(__name__)
REPLIES_KEPT = 256  # replies kept as audio (about 70 kB each): the home's confirmations are a few dozen


class Player:
    def __init__(self, sink, tts, workers, volume: float = 1.0, sounds: Sounds | None = None,
                 cues: bool = False):
        """`sink`: where audio goes (speaker, WAV file, memory), or None to stay silent; `volume`: a
        gain from 0 to 1 applied to every sample; `cues`: play the listening, done and error sounds
        (the ring is always played)."""
        self.sink = sink
        self.tts = tts
        self.workers = workers
        self.volume = volume
        self.sounds = sounds or (Sounds(tts.sample_rate) if sink is not None and tts is not None else None)
        self.cues = cues
        self.speaking = False  # a reply or a ring is playing: the conductor listens for "stop" meanwhile
        self.saying = ""  # the text being spoken, to tell the box's own voice from the user's
        self.cut = False  # interrupted: nothing more plays until the next turn
        self.kept: OrderedDict[str, list[np.ndarray]] = OrderedDict()  # reply -> its audio, newest last
        self._one_at_a_time = asyncio.Lock()
        self._cue_tasks: set[asyncio.Task] = set()

    @property
    def speaks(self) -> bool:
        return self.sink is not None and self.tts is not None

    def begin(self) -> None:
        """A new turn or announcement: what was cut before no longer matters."""
        self.cut = False

    def interrupt(self) -> None:
        """Stops what is playing now and what was about to play."""
        self.cut = True
        if (stop := getattr(self.sink, "stop", None)) is not None:
            stop()

    async def say(self, text: str, on_audio: Callable[[float], None] = lambda seconds: None) -> None:
        """Synthesizes text sentence by sentence on the TTS worker, the next sentence
        while one plays, and plays each as soon as it is ready (a reply said before plays at once);
        `on_audio` hears each chunk's length in seconds just before it plays."""
        kept = self.kept.get(text)
        chunks = iter(kept) if kept is not None else self.tts.sentences(text)

        def following() -> asyncio.Future:
            """The next chunk: made on the TTS worker while the one before plays, so none waits for it."""
            if kept is not None:
                done = asyncio.get_running_loop().create_future()
                done.set_result(next(chunks, None))
                return done
            made = asyncio.ensure_future(self.workers.run("tts", next, chunks, None))
            made.add_done_callback(lambda f: f.cancelled() or f.exception())  # one nobody waits for: cut short
            return made

        said: list[np.ndarray] = []
        self.speaking, self.saying = True, text
        try:
            coming = following()
            while not self.cut:
                pcm = await coming
                if pcm is None:
                    if kept is None:  # all of it was said: kept for the next time
                        self._keep(text, said)
                    break
                if self.cut:
                    break
                coming = following()
                said.append(pcm)
                on_audio(len(pcm) / self.tts.sample_rate)
                await self.play(pcm, self.tts.sample_rate)
        finally:
            self.speaking, self.saying = False, ""

    def _keep(self, text: str, audio: list[np.ndarray]) -> None:
        self.kept[text] = audio
        self.kept.move_to_end(text)
        while len(self.kept) > REPLIES_KEPT:
            self.kept.popitem(last=False)

    def prepare(self, replies: Iterable[str]) -> int:
        """Synthesizes replies ahead (on the TTS worker, at start): said later, they play at once.
        Returns how many were made."""
        made = 0
        for text in replies:
            if self.tts is None or text in self.kept or len(self.kept) >= REPLIES_KEPT:
                continue
            self._keep(text, list(self.tts.sentences(text)))
            made += 1
        return made

    async def ring(self) -> None:
        """The timer's ring."""
        self.speaking = True
        try:
            await self.play(self.sounds["ring"], self.tts.sample_rate)
        finally:
            self.speaking = False

    def cue(self, name: str) -> None:
        """The listening, done or error sound, started without waiting for it: the turn goes on."""
        if not (self.cues and self.speaks):
            return
        task = asyncio.get_running_loop().create_task(self._play_cue(name))
        self._cue_tasks.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self._cue_tasks.discard)

    async def _play_cue(self, name: str) -> None:
        try:
            await self.play(self.sounds[name], self.tts.sample_rate, cuttable=False)
        except Exception as e:  # noqa: BLE001 - a speaker that fails is reported by the reply that follows
            log.warning("could not play the %s sound: %s", name, e)

    async def play(self, pcm: np.ndarray, rate: int, cuttable: bool = True) -> None:
        if self.volume < 1:  # rounded, not truncated: int16 audio keeps its shape at low volume
            pcm = np.rint(pcm.astype(np.float32) * max(0.0, self.volume)).astype(pcm.dtype)
        async with self._one_at_a_time:
            if not (cuttable and self.cut):
                await self.sink.play(pcm, rate)

    async def end_of_reply(self) -> None:
        await self.sink.end_of_reply()

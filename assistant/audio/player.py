"""The one way sound leaves the box: spoken replies now, chimes and rings later, all at one volume."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .chime import chime


class Player:
    def __init__(self, sink, tts, workers, volume: float = 1.0):
        """`sink`: where audio goes (speaker, WAV file, memory), or None to stay silent; `volume`: a
        gain from 0 to 1 applied to every sample."""
        self.sink = sink
        self.tts = tts
        self.workers = workers
        self.volume = volume

    @property
    def speaks(self) -> bool:
        return self.sink is not None and self.tts is not None

    async def say(self, text: str, on_audio: Callable[[float], None] = lambda seconds: None) -> None:
        """Synthesizes text sentence by sentence on the TTS worker and plays each as soon as it is ready;
        `on_audio` hears each chunk's length in seconds just before it plays."""
        chunks = self.tts.sentences(text)
        while (pcm := await self.workers.run("tts", next, chunks, None)) is not None:
            on_audio(len(pcm) / self.tts.sample_rate)
            await self.play(pcm, self.tts.sample_rate)

    async def chime(self) -> None:
        """The timer's ring, at the voice's sample rate (a sink takes one rate)."""
        await self.play(chime(self.tts.sample_rate), self.tts.sample_rate)

    async def play(self, pcm: np.ndarray, rate: int) -> None:
        if self.volume < 1:  # rounded, not truncated: int16 audio keeps its shape at low volume
            pcm = np.rint(pcm.astype(np.float32) * max(0.0, self.volume)).astype(pcm.dtype)
        await self.sink.play(pcm, rate)

    async def end_of_reply(self) -> None:
        await self.sink.end_of_reply()

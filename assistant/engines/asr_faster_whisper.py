"""Speech to text with faster-whisper (CTranslate2, int8 on the CPU)."""

from __future__ import annotations

import numpy as np

from ..models import ModelStore


class FasterWhisper:
    def __init__(self, store: ModelStore, model: str, threads: int = 2, beam_size: int = 1):
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(store.dir(model)), device="cpu", compute_type="int8", cpu_threads=threads)
        self.beam_size = beam_size

    def transcribe(self, pcm: np.ndarray, hotwords: str | None = None) -> str:
        audio = pcm.astype(np.float32) / 32768
        segments, _ = self.model.transcribe(
            audio, language="en", beam_size=self.beam_size, hotwords=hotwords or None,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()

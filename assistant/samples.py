"""Spoken samples for the demo, the benchmark and the tests: piper or espeak-ng voices saying a wake
word, a pause, and commands, at 16 kHz."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .audio.wav import load_pcm16k, to_pcm16k, write_wav
from .models import ModelStore
from .types import SAMPLE_RATE

_piper_cache: dict[str, object] = {}


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.int16)


def speak_with(tts, voice: str, length_scale: float) -> None:
    """Piper samples of this voice are made by a box's own engine, not by a second copy of the model
    (the benchmark counts the box's memory)."""
    _piper_cache[f"{voice}:{length_scale}"] = tts


def piper(store: ModelStore, text: str, voice: str = "piper-joe-medium", length_scale: float = 1.0) -> np.ndarray:
    from .engines.tts_piper import PiperTts

    key = f"{voice}:{length_scale}"
    if key not in _piper_cache:
        _piper_cache[key] = PiperTts(store, voice, length_scale)
    tts = _piper_cache[key]
    pcm = np.concatenate(list(tts.sentences(text)))
    return to_pcm16k(pcm.astype(np.float32) / 32768, tts.sample_rate)


def espeak(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", f.name, text], check=True)
        return load_pcm16k(f.name)


def trimmed(pcm: np.ndarray) -> np.ndarray:
    """Without the voice's own silence before and after, so that a pause put in is the one heard."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    return pcm[loud[0]:loud[-1] + 1] if len(loud) else pcm


def utterance(*parts: np.ndarray | float) -> np.ndarray:
    """Join speech and pauses (a float is seconds of silence)."""
    return np.concatenate([silence(p) if isinstance(p, (int, float)) else p for p in parts])


def demo_command(store: ModelStore, path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pcm = utterance(0.5, piper(store, "Hey Jarvis."), 0.5, piper(store, "Turn on the kitchen light."), 2.5,
                        piper(store, "Hey Jarvis."), 0.5, piper(store, "Set the living room lamp to 30 percent."),
                        1.0)
        write_wav(path, pcm, SAMPLE_RATE)
    return path

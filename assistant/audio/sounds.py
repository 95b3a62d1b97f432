"""The box's sounds: listening (the wake word was heard), done (the command was taken), error, and the
timer's ring. Each is a small WAV in the package, made by this module from soft bell tones
(`python -m assistant.audio.sounds` writes them again); the project made them and gives them away
(CC0). A config may name its own WAV for any of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from ..config import SOUND_NAMES as NAMES
from ..config import Config, ConfigError
from .wav import AudioFileError, read_wav, write_wav

PACKAGED = Path(__file__).parent / "sounds"
RATE = 22050  # the voices' rate, so the built-in sounds are played as made
LEVEL = 0.5  # of full scale, before the volume
# (frequency in Hz, seconds) per tone, played one after another
TONES = {
    "listening": ((987.8, 0.07), (1318.5, 0.11)),  # B5 up to E6: short, rising, "I'm listening"
    "done": ((1318.5, 0.07), (987.8, 0.11)),  # the same, falling: "got it"
    "error": ((392.0, 0.14), (311.1, 0.22)),  # G4 down to D#4: low, "that did not work"
    "ring": ((1318.5, 0.35), (1046.5, 0.35)),  # E6 then C6: the timer's bell
}


def tones(name: str, rate: int = RATE) -> np.ndarray:
    parts = []
    for hz, seconds in TONES[name]:
        t = np.arange(int(seconds * rate)) / rate
        fade_in = np.minimum(1.0, t / 0.005)  # no click at the start of each tone
        parts.append(np.sin(2 * np.pi * hz * t) * np.exp(-6 * t) * fade_in)
    return (np.concatenate(parts) * LEVEL * 32767).astype(np.int16)


def load(path: str | Path, rate: int) -> np.ndarray:
    """A WAV as int16 mono at `rate` (a sink takes one rate: the voice's)."""
    x, file_rate = read_wav(path)
    mono = x.mean(axis=1)
    if file_rate != rate:
        mono = soxr.resample(mono, file_rate, rate)
    return (np.clip(mono, -1, 1) * 32767).astype(np.int16)


def check_own(cfg: Config) -> None:
    """Each sound file the config names is a WAV this module can play; raises ConfigError naming the key."""
    for name, path in cfg.sounds.own().items():
        try:
            read_wav(path)
        except AudioFileError as e:
            raise ConfigError(f"{cfg.path}: 'sounds.{name}': {e}") from None


class Sounds:
    """The sounds to play, loaded once at the player's rate; `own`: a WAV path per name, replacing the
    built-in one (an empty path keeps it)."""

    def __init__(self, rate: int, own: dict[str, str] | None = None):
        own = own or {}
        self.pcm = {n: load(own.get(n) or PACKAGED / f"{n}.wav", rate) for n in NAMES}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.pcm[name]


if __name__ == "__main__":
    PACKAGED.mkdir(exist_ok=True)
    for n in NAMES:
        write_wav(PACKAGED / f"{n}.wav", tones(n), RATE)
        print(f"{PACKAGED / n}.wav")

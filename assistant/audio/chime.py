"""The timer's ring: two soft bell tones made here in code, so there is no sound file to license."""

from __future__ import annotations

import numpy as np

TONES_HZ = (1318.5, 1046.5)  # E6 then C6
TONE_S = 0.35
LEVEL = 0.5  # of full scale, before the volume


def chime(rate: int) -> np.ndarray:
    t = np.arange(int(TONE_S * rate)) / rate
    fade_in = np.minimum(1.0, t / 0.005)  # no click at the start of each tone
    tones = [np.sin(2 * np.pi * f * t) * np.exp(-6 * t) * fade_in for f in TONES_HZ]
    return (np.concatenate(tones) * LEVEL * 32767).astype(np.int16)

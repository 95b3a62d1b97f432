"""Room and noise for test speech: convolve with a room impulse response, add noise at a set SNR.

SNR here is the loudest-frame definition (the harsher of the usual two): the RMS of the loudest 32 ms
frame of the (reverberant) speech against the RMS of the loudest 32 ms frame of the noise. An
average-power SNR over a clip that is mostly silence would call the same mix several dB cleaner.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

FRAME = 512  # 32 ms at 16 kHz


def loudest_frame_rms(x: np.ndarray) -> float:
    n = len(x) // FRAME * FRAME
    if n == 0:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0
    frames = x[:n].astype(np.float64).reshape(-1, FRAME)
    return float(np.sqrt((frames ** 2).mean(axis=1)).max())


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Speech as heard across a room, scaled back to the dry speech's loudest frame."""
    rir = rir.astype(np.float64)
    wet = fftconvolve(speech.astype(np.float64), rir / np.abs(rir).max())[: len(speech) + len(rir) // 2]
    return wet * (loudest_frame_rms(speech) / max(loudest_frame_rms(wet), 1e-9))


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float, offset: int = 0) -> np.ndarray:
    """Noise under the whole clip (silences included, so the endpointer hears it too), looped as needed."""
    reps = int(np.ceil((len(speech) + offset) / len(noise)))
    bed = np.tile(noise.astype(np.float64), reps)[offset: offset + len(speech)]
    gain = loudest_frame_rms(speech) / max(loudest_frame_rms(bed), 1e-9) / 10 ** (snr_db / 20)
    return speech.astype(np.float64) + bed * gain


def to_int16(x: np.ndarray) -> np.ndarray:
    peak = np.abs(x).max()
    if peak > 32767:  # scale down rather than clip: clipping is a different test
        x = x * (32767 / peak)
    return x.astype(np.int16)

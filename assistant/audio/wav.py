"""WAV files in and out: any common rate, width and channel count in; 16 kHz mono int16 for the pipeline."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soxr

from ..types import SAMPLE_RATE


class AudioFileError(Exception):
    pass


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (samples as float32 in [-1, 1], shape (n, channels)), sample rate)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise AudioFileError(f"{p}: cannot read: {e.strerror}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError(f"{p}: not a WAV file (no RIFF/WAVE header); convert it with e.g. "
                             f"'sox input.ext -r 16000 -c 1 output.wav'")
    fmt = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise AudioFileError(f"{p}: broken WAV format chunk")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioFileError(f"{p}: WAV data before its format chunk")
            return _decode(p, body, *fmt)
        pos += 8 + size + (size & 1)
    raise AudioFileError(f"{p}: WAV file has no audio data")


def _decode(p: Path, body: bytes, tag: int, channels: int, rate: int, bits: int) -> tuple[np.ndarray, int]:
    if channels < 1 or rate < 1000:
        raise AudioFileError(f"{p}: implausible WAV format ({channels} channels at {rate} Hz)")
    width = bits // 8
    body = body[: len(body) - len(body) % (width * channels)]
    if tag == _PCM and bits == 16:
        x = np.frombuffer(body, "<i2").astype(np.float32) / 32768
    elif tag == _PCM and bits == 8:
        x = (np.frombuffer(body, np.uint8).astype(np.float32) - 128) / 128
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(body, np.uint8).reshape(-1, 3)
        i = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        x = ((i << 8) >> 8).astype(np.float32) / 8388608
    elif tag == _PCM and bits == 32:
        x = np.frombuffer(body, "<i4").astype(np.float32) / 2147483648
    elif tag == _FLOAT and bits in (32, 64):
        x = np.frombuffer(body, "<f4" if bits == 32 else "<f8").astype(np.float32)
    else:
        raise AudioFileError(f"{p}: unsupported WAV encoding (format {tag}, {bits} bits); use 16-bit PCM")
    return x.reshape(-1, channels), rate


def load_pcm16k(path: str | Path) -> np.ndarray:
    """A WAV file as the pipeline hears it: 16 kHz mono int16."""
    x, rate = read_wav(path)
    return to_pcm16k(x.mean(axis=1), rate)


def to_pcm16k(mono: np.ndarray, rate: int) -> np.ndarray:
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE)
    return (np.clip(mono, -1, 1) * 32767).astype(np.int16)


def write_wav(path: str | Path, pcm: np.ndarray, rate: int) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())

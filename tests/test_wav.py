"""WAV input of any common shape becomes 16 kHz mono; anything else is a clear error."""

import struct
import wave

import numpy as np
import pytest
from conftest import DEVSET, needs_devset

from assistant.audio.wav import AudioFileError, load_pcm16k, read_wav


@needs_devset
def test_devset_44k_stereo_is_resampled():
    f = DEVSET / "rhasspy-en" / "wake" / "precise_turn_on_the_living_room_lamp.wav"
    x = load_pcm16k(f)
    raw, rate = read_wav(f)
    assert rate == 44100 and raw.shape[1] == 2
    assert abs(len(x) - len(raw) * 16000 / 44100) < 2 and np.abs(x).max() > 1000


def test_float32_wav(tmp_path):
    p = tmp_path / "f.wav"
    sig = (0.5 * np.sin(np.arange(8000) / 10)).astype("<f4")
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", sig.nbytes) + sig.tobytes()
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    x = load_pcm16k(p)
    assert len(x) == 16000 and 15500 < np.percentile(np.abs(x), 99) < 16800


def test_not_audio(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio")
    with pytest.raises(AudioFileError, match="not a WAV file"):
        load_pcm16k(p)


def test_truncated_header(tmp_path):
    p = tmp_path / "cut.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(AudioFileError):
        load_pcm16k(p)


@pytest.mark.slow  # the model loads before the file is read
def test_cli_rejects_a_wav_that_is_not_audio(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "x.wav"
    p.write_bytes(b"\x00" * 100)
    done = subprocess.run([sys.executable, "-m", "assistant", "transcribe", str(p)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "not a WAV file" in done.stderr

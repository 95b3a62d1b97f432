"""The box's sounds: the packaged WAVs are the ones this code makes, a user's own WAV replaces one, a bad
or missing one is a start-up error naming its key, and turning them off silences the cues only."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import home_config

from assistant.audio.io import MemorySink
from assistant.audio.player import Player
from assistant.audio.sounds import NAMES, RATE, Sounds, tones
from assistant.audio.wav import write_wav
from assistant.config import ConfigError


def test_the_packaged_sounds_are_the_ones_made_here():
    packaged = Sounds(RATE)
    for name in NAMES:
        assert np.abs(packaged[name].astype(int) - tones(name).astype(int)).max() <= 1, name
        assert 0.1 < len(packaged[name]) / RATE < 1.0  # short: they must not hold up a turn


def test_an_own_sound_replaces_the_built_in_one_at_the_players_rate(tmp_path):
    t = np.arange(8000) / 8000
    write_wav(tmp_path / "beep.wav", (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16), 8000)
    cfg = home_config(tmp_path, base='site = "demo"\n', extra_toml='[sounds]\nlistening = "beep.wav"\n')
    sounds = Sounds(22050, cfg.sounds.own())
    assert len(sounds["listening"]) == 22050  # one second, resampled from 8 kHz
    assert np.array_equal(sounds["done"], Sounds(22050)["done"])


@pytest.mark.parametrize("content, expected", [(None, "no such file"), (b"not audio", "not a WAV file")])
def test_a_bad_own_sound_is_an_error_naming_its_key(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "ding.wav").write_bytes(content)
    with pytest.raises(ConfigError) as e:
        home_config(tmp_path, base='site = "demo"\n', extra_toml='[sounds]\nerror = "ding.wav"\n')
    assert "'sounds.error'" in str(e.value) and expected in str(e.value)


class Voice:
    sample_rate = RATE


@pytest.mark.parametrize("cues", [True, False])
def test_cues_play_only_when_on_and_never_hold_up_the_caller(cues):
    sink = MemorySink(paced=True)
    player = Player(sink, Voice(), None, cues=cues)

    async def cue_then_go_on() -> tuple[int, int]:
        player.cue("listening")
        before = len(sink.chunks)  # the cue is under way, not finished: the caller went on at once
        await asyncio.sleep(0.5)
        return before, len(sink.chunks)

    before, after = asyncio.run(cue_then_go_on())
    assert before == 0 and after == (1 if cues else 0)

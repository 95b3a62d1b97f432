"""Model choice by need: the small model for commands, a larger one for open questions, a smaller one
while the board throttles. The board is a directory standing in for /sys; the models are the real Gemma 3
270M GGUF under three file names, so which one answered is visible."""

from __future__ import annotations

import logging
import os

import pytest
from conftest import EXAMPLE, home_config

from assistant import config, doctor, thermal
from assistant.engines.llm import select
from assistant.engines.load import make_brain
from assistant.models import ModelStore


def board(root, temp_c: float | None = 50.0, throttled: int | None = 0):
    """A sysfs tree as a Raspberry Pi kernel shows it: a thermal zone and the firmware's get_throttled."""
    zone = root / "class/thermal/thermal_zone0"
    zone.mkdir(parents=True, exist_ok=True)
    if temp_c is not None:
        (zone / "temp").write_text(f"{int(temp_c * 1000)}\n")
    fw = root / "devices/platform/soc/soc:firmware"
    fw.mkdir(parents=True, exist_ok=True)
    if throttled is not None:
        (fw / "get_throttled").write_text(f"{throttled:x}\n")
    return root


def home(tmp_path, **llm) -> config.Config:
    keys = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in llm.items())
    text = EXAMPLE.read_text().replace('route = "templates_then_llm"\n', f'route = "templates_then_llm"\n{keys}')
    return home_config(tmp_path, base=text)


def test_reading_the_board(tmp_path):
    r = thermal.read(str(board(tmp_path / "a", 61.5, 0x50000)))
    assert r.temp_c == 61.5 and r.throttled == 0x50000 and not r.slowed_now  # happened earlier, not now
    assert r.hot(80) is None and "throttling has occurred" in r.describe()
    r = thermal.read(str(board(tmp_path / "b", 55, 0x4)))
    assert r.slowed_now and r.hot(80) == "throttled now"
    r = thermal.read(str(board(tmp_path / "c", 82, None)))
    assert r.throttled is None and r.hot(80) == "CPU at 82 °C, limit 80 °C" and r.hot(85) is None
    assert thermal.read(str(tmp_path / "nothing")) == thermal.Reading()


def test_choice_by_need_and_heat(tmp_path):
    sysfs = board(tmp_path / "sys")
    cfg = home(tmp_path, question_model="qwen2.5-1.5b-instruct-q4_k_m", throttled_model="gemma-3-270m-q4_k_m",
               sys_root=str(sysfs)).llm
    p = select.ModelPicker(cfg, None, cache_s=0)
    assert (p.choose("command").role, p.choose("question").role) == ("commands", "questions")
    assert p.choose("question").model == "qwen2.5-1.5b-instruct-q4_k_m"
    board(sysfs, 83)
    c = p.choose("question")
    assert c.role == "throttled" and "83 °C" in c.reason and "llm.throttled_model" in c.reason
    cfg.throttled_model = ""  # nothing smaller configured: at least not the larger one
    c = p.choose("question")
    assert c.role == "commands" and c.model == cfg.model and "not the larger" in c.reason
    board(sysfs, 50, 0x8)  # cool, but the firmware says it is at the soft temperature limit now
    assert "soft temperature limit now" in p.choose("question").reason
    assert not select.ModelPicker(config.LlmConfig(), None).active  # nothing to switch between


@pytest.mark.parametrize("key,value,says", [
    ("question_model", "llama-70b", "llm.question_model"),
    ("throttled_model", "models/small.gguf", "llm.throttled_model"),
    ("hot_c", 300.0, "llm.hot_c"),
    ("sys_root", "/nonexistent-sysfs", "llm.sys_root"),
])
def test_bad_model_keys_are_named(tmp_path, key, value, says):
    with pytest.raises(config.ConfigError, match=says.replace(".", r"\.")):
        home(tmp_path, **{key: value})


def test_doctor_says_which_model_it_would_choose(tmp_path):
    sysfs = board(tmp_path / "sys", 50)
    big = tmp_path / "big.gguf"
    big.write_bytes(b"")
    cfg = home(tmp_path, question_model="big.gguf", sys_root=str(sysfs))
    (f,) = doctor.check_llm_model(cfg)
    assert "a command would go to gemma-3-270m-q4_k_m" in f.text and "an open question to" in f.text
    assert f.text.split("an open question to ")[1].startswith(str(big)), f.text
    board(sysfs, 90)
    (f,) = doctor.check_llm_model(cfg)
    assert "90 °C" in f.text and "not the larger" in f.text


@pytest.mark.slow
def test_real_models_switch_by_need_and_heat(tmp_path, caplog):
    pytest.importorskip("llama_cpp")
    gguf = ModelStore().path("gemma-3-270m-q4_k_m")
    for name in ("big.gguf", "tiny.gguf"):  # the one GGUF here, under the two other roles
        os.symlink(gguf, tmp_path / name)
    sysfs = board(tmp_path / "sys", 50)
    cfg = home(tmp_path, question_model="big.gguf", throttled_model="tiny.gguf", sys_root=str(sysfs))
    brain = make_brain(cfg, ModelStore())
    brain.picker.cache_s = 0
    caplog.set_level(logging.INFO, logger="assistant.understand.llm")
    try:
        r = brain.respond("it is too dark in the kitchen")
        assert r.model == gguf.name and r.intent.device_ids == ("kitchen_light",)
        r = brain.respond("what is the capital of Italy")
        assert r.model == "big.gguf" and "rome" in "".join(r.speech).lower()
        assert "an open question: llm.question_model" in caplog.text

        board(sysfs, 86)  # hot: everything on the smaller model, and it still works
        r = brain.respond("it is too dark in the kitchen")
        assert r.model == "tiny.gguf" and r.intent.device_ids == ("kitchen_light",)
        r = brain.respond("what is the capital of Italy")
        assert r.model == "tiny.gguf" and "rome" in "".join(r.speech).lower()
        assert "the board is throttling (CPU at 86 °C" in caplog.text

        board(sysfs, 60, 0x50000)  # it throttled earlier, not now: back to the larger model
        assert brain.respond("what is the capital of Italy").model == "big.gguf"
    finally:
        brain.close()

"""`assistant doctor` on real files, a real broker, and made-up sysfs trees and vcgencmd answers."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import home_file

from assistant import config, doctor
from assistant.cli import main
from assistant.models import ModelStore


def test_healthy_box_on_a_test_input_exits_zero(tmp_path, broker, store, capsys):
    p = home_file(tmp_path, f'[mqtt]\nurl = "{broker.url}"\n'
                            '[audio]\ninput_device = "silence"\noutput_device = "none"\n')
    assert main(["doctor", "--config", str(p), "--models-dir", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "piper-joe-medium present, sha256 verified" in out
    assert "accepts connections" in out and "everything needed works" in out


def test_the_size_of_the_users_grammar_is_said(tmp_path):
    grammar = Path(__file__).parent / "grammars" / "coffee_orders.yaml"
    cfg = config.load(home_file(tmp_path, f'sentences_file = "{grammar.as_posix()}"\n'))
    [found] = doctor.check_grammar(cfg)
    assert found.what == "your intents" and "1 intent saying 68,924,160 sentences" in found.text
    assert doctor.check_grammar(config.load(home_file(tmp_path, ""))) == []  # none of its own: nothing to say


def test_bad_config_missing_models_and_no_broker_are_named(tmp_path, capsys):
    bad = home_file(tmp_path, "[mqtt]\nurl = 5\n")
    assert main(["doctor", "--config", str(bad)]) == 1
    assert "FAIL config" in capsys.readouterr().out
    p = home_file(tmp_path, '[mqtt]\nurl = "mqtt://127.0.0.1:9"\n[audio]\ninput_device = "file:/nonexistent.wav"\n')
    assert main(["doctor", "--config", str(p), "--models-dir", str(tmp_path / "empty")]) == 1
    out = capsys.readouterr().out
    assert "whisper-tiny.en: model.bin missing" in out and "run: assistant models fetch" in out
    assert "nothing answers at 127.0.0.1:9" in out
    assert "no such file" in out


def test_bad_custom_grammar_is_a_start_up_error(tmp_path, capsys):
    """Checked above the config, by parsing the grammar as the assistant will: still before anything runs."""
    p = home_file(tmp_path, '[[intent]]\nname = "Hi"\nsentences = ["hello (there"]\n')
    assert main(["doctor", "--config", str(p)]) == 1
    out = capsys.readouterr().out
    assert "FAIL config" in out and f"{p}: a sentence template does not parse" in out
    assert main(["ask", "--config", str(p), "hello"]) == 2
    assert f"error: {p}: a sentence template does not parse" in capsys.readouterr().err


def test_corrupt_model_is_a_failure(tmp_path, store, example_cfg):
    shutil.copytree(store.root / "silero-vad", tmp_path / "silero-vad")
    victim = next(p for p in (tmp_path / "silero-vad").rglob("*") if p.is_file())
    victim.write_bytes(b"not a model")
    found = doctor.check_models(ModelStore(tmp_path), example_cfg)
    assert any(f.level == "fail" and "silero-vad" in f.text and "corrupt" in f.text for f in found)


def test_temperature_levels(tmp_path):
    for milli, level in [("52000", "ok"), ("79000", "warn"), ("86500", "fail")]:
        zone = tmp_path / milli / "class/thermal/thermal_zone0"
        zone.mkdir(parents=True)
        (zone / "temp").write_text(milli + "\n")
        f = doctor.check_thermal(str(tmp_path / milli))[0]
        assert f.level == level and f"{int(milli) // 1000}" in f.text


def _vcgencmd(tmp_path, answer: str) -> str:
    prog = tmp_path / "vcgencmd"
    prog.write_text(f"#!/bin/sh\necho {answer}\n")
    prog.chmod(0o755)
    return str(prog)


def test_throttling_is_said_in_words(tmp_path):
    ok = doctor.check_thermal(str(tmp_path), _vcgencmd(tmp_path, "throttled=0x0"))[-1]
    assert ok.level == "ok"
    past = doctor.check_thermal(str(tmp_path), _vcgencmd(tmp_path, "throttled=0x50000"))[-1]
    assert past.level == "warn" and "under-voltage has occurred" in past.text and "throttling has occurred" in past.text
    now = doctor.check_thermal(str(tmp_path), _vcgencmd(tmp_path, "throttled=0x50005"))[-1]
    assert now.level == "fail" and "under-voltage now" in now.text


def test_npu_absent_present_without_driver(tmp_path):
    assert doctor.check_npu(str(tmp_path / "hailo*"))[0].level == "info"
    (tmp_path / "hailo0").touch()
    (f,) = doctor.check_npu(str(tmp_path / "hailo*"))
    assert f.level == "warn" and "hailo_platform is not installed" in f.text  # no HailoRT on this machine
    assert "llama-cpp-python" in doctor.check_backends([f])[0].text or "templates" in doctor.check_backends([f])[0].text


def test_memory_and_disk(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  8000000 kB\nMemAvailable:  150000 kB\n")
    disk, mem = doctor.check_resources(tmp_path / "not/yet/made", str(meminfo))
    assert disk.level in ("ok", "warn") and str(tmp_path) in disk.text
    assert mem.level == "fail" and "146 MB available" in mem.text


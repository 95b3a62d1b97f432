"""`assistant bench --beside-home-assistant` without Home Assistant's servers installed: one line saying what
is missing and how to install it, exit 0, and no model loaded. The measurement itself is not a test: it
needs a second virtualenv and minutes (`make bench-ha-chain`)."""

import json

from assistant import cli, ha_chain


def test_skips_in_one_line_without_the_wyoming_venv(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ha_chain, "run_beside", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    assert cli.main(["bench", "--beside-home-assistant", "--wyoming-venv", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("not measured: wyoming-faster-whisper is not installed in ")
    assert "tools/wyoming-venv.sh" in out[0] and "wyoming-piper==" in out[0]


def test_names_the_missing_server_and_says_so_in_json(tmp_path, capsys):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "wyoming-faster-whisper").touch()
    assert cli.main(["bench", "--beside-home-assistant", "--json", "--wyoming-venv", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["not_measured"].startswith("not measured: wyoming-piper is not installed in ")


def test_the_venv_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_WYOMING_VENV", str(tmp_path))
    assert ha_chain.wyoming_venv(None) == tmp_path
    assert ha_chain.wyoming_venv("elsewhere") == ha_chain.Path("elsewhere")


def test_report_gives_both_ratios():
    theirs = {"asr": [0.3, 0.4], "understand": [0.01, 0.01], "publish": [0.002, 0.002],
              "tts_first_audio": [0.06, 0.07], "excluding": [0.312, 0.412]}
    d = ha_chain.report([0.5, 0.6], theirs, 2, [])
    assert abs(d["ratio_ours_over_theirs_excluding_silence"] - 0.55 / 0.362) < 1e-9
    assert abs(d["ratio_ours_over_theirs_including_silence"] - 0.55 / 1.062) < 1e-9
    assert "with their silence wait" in d["text"]

"""Several wake words at once, from the manifest or the owner's own openWakeWord files: the config, the
check of a file at start, `check-config`, `run`, `doctor`, and spoken wake words through the pipeline and
the Wyoming wake service, on the real models and a real broker."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from conftest import EXAMPLE, home_config, home_file, run

from assistant import config
from assistant.audio.io import FileSource
from assistant.audio.wav import load_pcm16k
from assistant.broker import free_port
from assistant.cli import main
from assistant.config import ConfigError, WakeEntry
from assistant.engines.wake_openwakeword import OpenWakeWord, file_problem
from assistant.models import ModelError
from assistant.mqtt_recorder import MqttRecorder
from assistant.samples import piper, utterance
from assistant.types import SAMPLE_RATE

KITCHEN = "zigbee2mqtt/kitchen_light/set"
BEDROOM = "zigbee2mqtt/bedroom_light/set"
NOT_ONNX = "is not an ONNX model (Protobuf parsing failed)"


def wake_toml(*models: str) -> str:
    """The example home with these wake words instead of its own."""
    listed = ", ".join(f'"{m}"' for m in models)
    return EXAMPLE.read_text().replace('models = ["hey_jarvis"]', f"models = [{listed}]")


def load_error(tmp_path, toml: str) -> str:
    with pytest.raises(ConfigError) as e:
        config.load(home_file(tmp_path, toml))
    assert "\n" not in str(e.value)
    return str(e.value)


def text_file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is a text file, not a model\n")
    return path


# -- the config: what can be told without loading a model ------------------------------------------------

def test_models_lists_names_and_files_and_model_is_the_one_word_form(tmp_path, monkeypatch):
    own, home = text_file(tmp_path / "wake" / "hey_computer.onnx"), text_file(tmp_path / "wake" / "my_box.onnx")
    monkeypatch.setenv("HOME", str(tmp_path))  # the config does not open the files: that they exist is enough
    cfg = config.load(home_file(tmp_path, wake_toml("hey_jarvis", "alexa", "wake/hey_computer.onnx",
                                                    "~/wake/my_box.onnx")))
    assert [(w.name, w.file, w.key) for w in cfg.wake.entries()] == [
        ("hey_jarvis", "", "wake.models[0]"), ("alexa", "", "wake.models[1]"),
        ("hey_computer", str(own), "wake.models[2]"), ("my_box", str(home), "wake.models[3]")]
    assert [w.phrase for w in cfg.wake.entries()] == ["hey jarvis", "alexa", "hey computer", "my box"]
    one = config.load(home_file(tmp_path, '[wake]\nmodel = "alexa"\n'))
    assert [(w.name, w.key) for w in one.wake.entries()] == [("alexa", "wake.model")]
    default = config.load(home_file(tmp_path, 'site = "x"\n'))
    assert [w.name for w in default.wake.entries()] == ["hey_jarvis"]


@pytest.mark.parametrize("wake, words", [
    ('models = ["hey_jarvis", "computer"]', ["'wake.models[1]' should be one of the manifest's wake words",
                                             "alexa, hey_jarvis, hey_mycroft", "'computer'"]),
    ('model = "whisper-tiny.en"', ["'wake.model' should be one of", "'whisper-tiny.en'"]),
    ('model = "alexa"\nmodels = ["alexa"]', ["'wake.model' and 'wake.models' are both set"]),
    ('models = ["alexa", "hey_jarvis", "alexa"]', ["'wake.models[2]': 'alexa' is listed twice"]),
    ('models = ["alexa", "hey_jarvis"]\nthreshold = 1.5', ["'wake.threshold' should be between 0 and 1"]),
])
def test_a_wrong_wake_word_names_its_key(tmp_path, wake, words):
    msg = load_error(tmp_path, f"[wake]\n{wake}\n")
    for w in words:
        assert w in msg, msg


def test_a_missing_file_is_named_where_it_was_looked_for(tmp_path):
    msg = load_error(tmp_path, wake_toml("alexa", "wake/hey_computer.onnx"))
    assert msg == (f"{tmp_path / 'home.toml'}: 'wake.models[1]': no such wake model file "
                   f"'{tmp_path / 'wake' / 'hey_computer.onnx'}'")


def test_two_files_that_would_be_the_same_wake_word_are_refused(tmp_path):
    text_file(tmp_path / "a" / "alexa.onnx")
    text_file(tmp_path / "b" / "hey.onnx")
    text_file(tmp_path / "c" / "hey.onnx")
    msg = load_error(tmp_path, wake_toml("alexa", "a/alexa.onnx"))
    assert "'wake.models[1]': 'a/alexa.onnx' and 'alexa' would both be the wake word 'alexa'" in msg
    msg = load_error(tmp_path, wake_toml("b/hey.onnx", "c/hey.onnx"))
    assert "'wake.models[1]': 'c/hey.onnx' and 'b/hey.onnx' would both be the wake word 'hey'" in msg


# -- a file openWakeWord cannot run: opened where the models load ----------------------------------------

def test_what_is_wrong_with_a_file_is_said_in_a_few_words(tmp_path, store):
    assert file_problem(store.path("alexa")) is None
    assert file_problem(text_file(tmp_path / "hey.onnx")) == NOT_ONNX
    assert file_problem(store.path("openwakeword-features", "melspectrogram.onnx")) == (
        "takes input [batch_size, samples], but openWakeWord gives its models [1, 16, 96]")
    silero = file_problem(store.path("silero-vad"))
    assert silero.startswith("takes 3 inputs (input [seq_len, 576], h [1, 1, 128], c [1, 1, 128])"), silero
    with pytest.raises(ModelError, match=re.escape(f"the wake model {tmp_path / 'hey.onnx'} {NOT_ONNX}")):
        OpenWakeWord(store, [WakeEntry("hey", str(tmp_path / "hey.onnx"))])


def wrong_shape(store, tmp_path):
    """An ONNX model that loads but is no wake word model: openWakeWord's own melspectrogram."""
    path = tmp_path / "wake" / "hey_wrong.onnx"
    path.parent.mkdir(exist_ok=True)
    shutil.copy(store.path("openwakeword-features", "melspectrogram.onnx"), path)
    return path


def test_check_config_says_what_is_wrong_with_the_file_in_one_line(tmp_path, store, capsys):
    text_file(tmp_path / "wake" / "hey_text.onnx")
    wrong = wrong_shape(store, tmp_path)
    cases = [("wake/hey_text.onnx", f"'wake.models[1]': the wake model {tmp_path / 'wake' / 'hey_text.onnx'} "
                                    f"{NOT_ONNX}"),
             ("wake/hey_wrong.onnx", f"'wake.models[1]': the wake model {wrong} takes input [batch_size, samples], "
                                     f"but openWakeWord gives its models [1, 16, 96]"),
             ("wake/hey_gone.onnx", f"'wake.models[1]': no such wake model file "
                                    f"'{tmp_path / 'wake' / 'hey_gone.onnx'}'")]
    for entry, said in cases:
        p = home_file(tmp_path, wake_toml("alexa", entry))
        assert main(["check-config", str(p)]) == 2
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [f"{p}: {said}"] and captured.out == ""
    good = tmp_path / "wake" / "hey_box.onnx"
    shutil.copy(store.path("alexa"), good)
    assert main(["check-config", str(home_file(tmp_path, wake_toml("hey_jarvis", "wake/hey_box.onnx")))]) == 0
    assert "is valid" in capsys.readouterr().out


def test_run_with_a_bad_wake_model_says_it_publishes_it_and_exits_2(tmp_path, store, broker):
    wrong = wrong_shape(store, tmp_path)
    live = home_file(tmp_path, wake_toml("hey_jarvis", "wake/hey_wrong.onnx").replace('site = "demo"', 'site = "hall"'))
    said = tmp_path / "said.wav"
    done = subprocess.run([sys.executable, "-m", "assistant", "run", "--config", str(live), "--mqtt", broker.url,
                           "--input", str(tmp_path / "never-read.wav"), "--output", str(said),
                           "--models-dir", str(store.root)], capture_output=True, text=True, timeout=120)
    line = (f"{live}: 'wake.models[1]': the wake model {wrong} takes input [batch_size, samples], but openWakeWord "
            f"gives its models [1, 16, 96]")
    assert done.returncode == 2 and done.stderr.splitlines() == [f"error: {line}"], done.stderr
    spy = MqttRecorder(broker.url, ["assistant/hall/#"])  # subscribed afterwards: only retained messages arrive
    spy.settle()
    spy.close()
    retained = dict(spy.messages)
    assert retained["assistant/hall/state"] == "error" and retained["assistant/hall/error"] == line
    assert len(load_pcm16k(said)) > SAMPLE_RATE  # "My configuration has an error in the key wake dot models 1."


def test_doctor_lists_the_wake_words_and_where_each_comes_from(tmp_path, store, capsys):
    shutil.copy(store.path("alexa"), tmp_path / "hey_box.onnx")
    p = home_file(tmp_path, wake_toml("hey_jarvis", "hey_box.onnx")
                  + '\n[audio]\ninput_device = "silence"\noutput_device = "none"\n')
    doctor = ["doctor", "--config", str(p), "--models-dir", str(store.root), "--mqtt", f"mqtt://127.0.0.1:{free_port()}"]
    main(doctor)
    lines = [line for line in capsys.readouterr().out.splitlines() if "wake word" in line]
    assert lines == [
        "     wake word    hey_jarvis ('hey jarvis'): the manifest's model, from wake.models[0]",
        f"     wake word    hey_box ('hey box'): your own model {tmp_path / 'hey_box.onnx'}, from wake.models[1]"]
    text_file(tmp_path / "hey_box.onnx")
    assert main(doctor) == 1
    assert f"FAIL config       {p}: 'wake.models[1]': the wake model" in capsys.readouterr().out


# -- spoken: through the pipeline and the Wyoming wake service -------------------------------------------

@pytest.fixture
def two_words(tmp_path, store, engines, make_assistant):
    """An assistant on the example home listening for "hey jarvis", "alexa" and the owner's own hey_box.onnx
    (a copy of the alexa model, so that saying "alexa" wakes it as hey_box), with the other engines shared."""
    shutil.copy(store.path("alexa"), tmp_path / "hey_box.onnx")

    def make(*models: str):
        cfg = home_config(tmp_path, base=wake_toml(*models))
        own = type(engines)(OpenWakeWord(store, cfg.wake.entries()), engines.vad, engines.asr, engines.tts)
        return make_assistant(cfg, with_engines=own)

    return make


def said(store, *texts: str):
    return utterance(0.4, *[x for t in texts for x in (piper(store, t), 0.6)], 1.0)


def test_each_wake_word_wakes_it_and_the_command_after_it_acts(store, two_words, spy):
    a, _, events = two_words("hey_jarvis", "alexa")
    assert a.engines.wake.names == ["hey_jarvis", "alexa"]
    run(a.run(FileSource(pcm=said(store, "Hey Jarvis.", "Turn on the kitchen light."))))
    run(a.run(FileSource(pcm=said(store, "Alexa.", "Turn off the bedroom light."))))
    spy.settle()
    assert [e.data["word"] for e in events if e.kind == "wake"] == ["hey_jarvis", "alexa"]
    assert spy.on(KITCHEN) == [{"state": "ON"}] and spy.on(BEDROOM) == [{"state": "OFF"}]
    assert [w["word"] for w in spy.on("assistant/demo/wake")] == ["hey_jarvis", "alexa"]


def test_a_word_not_listed_does_not_wake_it(store, two_words, spy):
    a, _, events = two_words("hey_jarvis")
    run(a.run(FileSource(pcm=said(store, "Alexa.", "Turn on the kitchen light."))))
    spy.settle()
    assert not [e for e in events if e.kind == "wake"] and spy.device_messages() == []


def test_the_owners_own_model_file_wakes_it_by_its_name(store, two_words, spy):
    a, _, events = two_words("hey_jarvis", "hey_box.onnx")
    run(a.run(FileSource(pcm=said(store, "Alexa.", "Turn on the kitchen light."))))
    spy.settle()
    assert [e.data["word"] for e in events if e.kind == "wake"] == ["hey_box"]
    assert spy.on(KITCHEN) == [{"state": "ON"}]


def test_wyoming_describes_each_wake_word_and_detection_names_the_one_heard(tmp_path, store, make_assistant):
    from test_wyoming import ask, audio_events
    from wyoming.info import Describe, Info
    from wyoming.wake import Detect, Detection

    from assistant.config import WyomingConfig
    from assistant.wyoming_server import serving

    shutil.copy(store.path("alexa"), tmp_path / "hey_box.onnx")
    described, _, _ = make_assistant(home_config(tmp_path, base=wake_toml("hey_jarvis", "alexa", "hey_box.onnx")))
    a, _, _ = make_assistant(home_config(tmp_path, base=wake_toml("hey_jarvis", "alexa")))
    alexa, jarvis = utterance(0.5, piper(store, "Alexa."), 1.0), utterance(0.5, piper(store, "Hey Jarvis."), 1.0)

    async def go():
        async with serving(described, WyomingConfig(port=0, zeroconf=False), store) as server:
            info = Info.from_event((await ask(server, Describe().event(), until="info"))[-1])
        async with serving(a, WyomingConfig(port=0, zeroconf=False), store) as server:
            heard = [(await ask(server, Detect(names=names).event(), *audio_events(pcm),
                                until=("detection", "not-detected")))[-1]
                     for names, pcm in [(None, alexa), (None, jarvis), (["alexa"], alexa), (["alexa"], jarvis),
                                        (["ok_nabu"], alexa)]]
        return info, heard

    info, heard = run(go())
    models = info.wake[0].models
    assert [(m.name, m.phrase) for m in models] == [("hey_jarvis", "hey jarvis"), ("alexa", "alexa"),
                                                    ("hey_box", "hey box")]
    assert models[1].attribution.name == store.model("alexa").license
    assert models[2].attribution.name == "the owner's own model" and "hey_box.onnx" in models[2].description
    assert [Detection.from_event(e).name if e.type == "detection" else e.type for e in heard] == [
        "alexa", "hey_jarvis", "alexa", "not-detected", "alexa"]  # a name it does not have: all of its own

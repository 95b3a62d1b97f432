"""After the assistant asks a question, the answer needs no wake word, for `llm.follow_up_s` seconds;
after that, speech without the wake word is ignored again. Spoken audio through the whole pipeline, on
the real broker."""

from __future__ import annotations

import pytest
from conftest import EXAMPLE, home_config, run

from assistant.audio.io import FileSource
from assistant.samples import piper, utterance

KITCHEN = "zigbee2mqtt/kitchen_light/set"
BEDROOM = "zigbee2mqtt/bedroom_light/set"
WINDOW_S = 3.0


def home(tmp_path, extra: str = ""):
    """The example home, where switching a light is always asked back (as locks are by default), or
    where a custom intent answers with a question."""
    text = EXAMPLE.read_text().replace('route = "templates_then_llm"\n',
                                       f'route = "templates_then_llm"\nfollow_up_s = {WINDOW_S}\n')
    return home_config(tmp_path, extra, base=text)


ASK_BACK = '\n[understand]\nconfirm_domains = ["light"]\n'
QUESTION = '\n[[intent]]\nname = "Greeting"\nsentences = ["how are you [doing]"]\nreply = "Very well. And you, what can I do?"\n'


def kinds(events, kind):
    return [e for e in events if e.kind == kind]


def converse(store, a, spy, first: str, gap_s: float, second: str) -> None:
    """The wake word once, `first`, a pause of `gap_s`, then `second` with no wake word."""
    pcm = utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, first), gap_s, piper(store, second), 1.0)
    run(a.run(FileSource(pcm=pcm)))
    spy.settle()


@pytest.mark.parametrize("gap_s,acted", [(1.0, True), (WINDOW_S + 2.0, False)])
def test_yes_without_the_wake_word_within_the_window(store, make_assistant, spy, tmp_path, gap_s, acted):
    a, _, events = make_assistant(home(tmp_path, ASK_BACK))
    converse(store, a, spy, "Turn on the kitchen light.", gap_s, "Yes.")
    assert len(kinds(events, "wake")) == 1 and len(kinds(events, "ask")) == 1
    said = [e.data["text"] for e in kinds(events, "reply")]
    assert said[0].startswith("Should I") and said[0].endswith("?")
    if acted:  # heard and carried out, though nobody said "hey jarvis" again
        assert spy.on(KITCHEN) == [{"state": "ON"}]
        assert "yes" in kinds(events, "transcript")[-1].data["text"].lower()
    else:  # the window closed: "yes" was not even transcribed, nothing switched
        assert spy.device_messages() == []
        assert len(kinds(events, "transcript")) == 1
        assert a.understanding.pending is None


@pytest.mark.parametrize("gap_s,acted", [(1.0, True), (WINDOW_S + 2.0, False)])
def test_command_after_a_spoken_question(store, make_assistant, spy, tmp_path, gap_s, acted):
    a, _, events = make_assistant(home(tmp_path, QUESTION))
    converse(store, a, spy, "How are you doing?", gap_s, "Turn on the bedroom light.")
    assert len(kinds(events, "wake")) == 1
    assert kinds(events, "reply")[0].data["text"].endswith("?")
    assert spy.on(BEDROOM) == ([{"state": "ON"}] if acted else [])
    assert len(kinds(events, "transcript")) == (2 if acted else 1)

"""A failing part ends its turn, never the box: the recogniser, the voice or the speaker raising is
logged, reported as an error event, apologised for where the voice still works, and the next command is
carried out as usual. The failures are injected into the real engines and sinks (a speaker unplugged
mid-reply raises from its write; a recogniser runs out of memory)."""

from __future__ import annotations

from conftest import run
from test_everyday import sounds_played
from test_voice_e2e import KITCHEN, command, reply_text

from assistant.audio.io import FileSource

LAMP_OFF = "Turn off the living room lamp."


class FailsOnce:
    """Wraps a real part; its named method raises the first time it is called."""

    def __init__(self, part, method: str, error: Exception):
        self._part, self._method, self._error = part, method, error

    def __getattr__(self, name):
        value = getattr(self._part, name)
        if name != self._method or self._error is None:
            return value

        def fail(*args, **kwargs):
            error, self._error = self._error, None
            raise error

        return fail


def errors(events) -> list[str]:
    return [e.data["where"] for e in events if e.kind == "error"]


def test_an_unplugged_speaker_ends_the_reply_not_the_box(store, make_assistant, spy):
    a, sink, events = make_assistant()
    a.player.cues = False  # the reply's own write is the one that fails
    a.player.sink = FailsOnce(sink, "play", OSError("the audio device went away"))
    run(a.run(FileSource(pcm=command(store, "Turn on the kitchen light."))))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}]  # acting came before speaking
    assert errors(events) == ["speak"]
    run(a.run(FileSource(pcm=command(store, "Turn off the kitchen light."))))
    spy.settle()
    assert spy.on(KITCHEN) == [{"state": "ON"}, {"state": "OFF"}] and sink.chunks  # heard again


def test_a_failing_recogniser_is_apologised_for_and_the_next_command_works(store, engines, make_assistant, spy):
    a, sink, events = make_assistant()
    a.ahead.enabled = False  # the recogniser's one failure is the turn's own, not a reading ahead of it
    a.engines.asr = FailsOnce(engines.asr, "encode", MemoryError("out of memory"))
    try:
        run(a.run(FileSource(pcm=command(store, "Turn on the kitchen light."))))
        assert errors(events) == ["hear"] and spy.device_messages() == []
        assert sounds_played(sink) == ["listening", "done", "error"]
        assert "sorry" in reply_text(engines, sink)
        run(a.run(FileSource(pcm=command(store, "Turn on the kitchen light."))))
        spy.settle()
        assert spy.on(KITCHEN) == [{"state": "ON"}]
    finally:
        a.engines.asr = engines.asr  # the engines are shared with the other tests


def test_a_failing_voice_ends_an_announcement_not_the_box(store, engines, make_assistant, spy):
    a, sink, events = make_assistant()
    a.player.tts = FailsOnce(engines.tts, "sentences", RuntimeError("onnxruntime: bad allocation"))
    a.presence.inbox.queue.put(("say", "The washing machine has finished."))
    run(a.run(FileSource(pcm=command(store, "Turn on the kitchen light."))))
    spy.settle()
    assert errors(events) == ["speak"] and spy.on(KITCHEN) == [{"state": "ON"}]

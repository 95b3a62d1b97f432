"""`assistant accuracy` end to end on a handful of clips: the benchmark itself keeps working."""

from __future__ import annotations

from conftest import DEVSET, EXAMPLE, needs_devset

from assistant import config
from assistant.accuracy import run_accuracy, what_was_done
from assistant.events import Event, Kind
from assistant.mqtt_recorder import MqttRecorder
from assistant.types import Intent


@needs_devset
def test_a_small_accuracy_run_grades_both_paths(store, broker):
    report = run_accuracy(config.load(EXAMPLE), store, per_snr=2, non_commands=2, snrs=(24,),
                          noise_dir=DEVSET / "noise-rir")
    rows = {row["path"]: row for row in report["table"]}
    assert set(rows) == {"before", "after"}
    for row in rows.values():
        assert row["commands"] == 2 and row["non_commands"] == 2
        assert row["ok"] + row["wrong"] + row["asked"] <= 2
    assert rows["after"]["latency_median_s"] is not None and "success" in report["text"]


def test_an_everyday_intent_only_asked_about_is_not_graded_as_done(broker):
    """The turn names the intent it asks about ("Should I start a 2 second timer?"), but nothing was done."""
    timer = Intent(name="HassStartTimer", text="start a 2 second timer", slots={"seconds": 2})
    devices = MqttRecorder(broker.url)
    try:
        assert what_was_done([Event(Kind.ASK, {"intent": timer}), Event(Kind.INTENT, {"intent": timer})], devices) == {}
        assert what_was_done([Event(Kind.INTENT, {"intent": timer})], devices) != {}
    finally:
        devices.close()

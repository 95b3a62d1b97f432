"""`assistant accuracy` end to end on a handful of clips: the benchmark itself keeps working."""

from __future__ import annotations

from conftest import DEVSET, EXAMPLE, needs_devset

from assistant import config
from assistant.accuracy import run_accuracy


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

"""The soak run, short: a dozen spoken commands while the broker is killed, frozen and restarted once each."""

from __future__ import annotations

import pytest

from assistant.soak import run_soak


@pytest.mark.slow
def test_every_command_once_or_failed_never_twice_or_late(example_cfg, store):
    report = run_soak(example_cfg, store, turns=12, faults=1, rss_every=4)
    assert report["faults"] == {"kill": 1, "freeze": 1, "restart": 1}
    assert report["duplicates"] == 0 and report["late"] == 0, report["text"]
    assert report["hung"] == 0 and report["other_errors"] == 0, report["text"]
    assert report["delivered_once"] + report["answered_failed"] + report["misheard"] >= 12, report["text"]
    assert report["still_answering"] and report["passed"], report["text"]

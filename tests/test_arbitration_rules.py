"""The boxes' agreement on who answers, without a broker: what a claim is, which claim wins, when a box
decides, and what it does with claims that are not claims (arbitration.py). On a real broker with real
audio: tests/test_arbitration.py."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time

import numpy as np
import pytest
from conftest import EXAMPLE, home_config

from assistant import config
from assistant.arbitration import (
    LEVEL_FLOOR_DB,
    MAX_PEERS,
    Arbiter,
    Claim,
    level_db,
    parse_claim,
    rank,
)
from assistant.config import ConfigError
from assistant.mqtt_topics import Rejections

CLAIMS = "assistant/arbitration/claim"


class Link:
    """What the arbiter uses of an MqttLink: subscriptions called by hand, publications kept."""

    def __init__(self, connected: bool = True):
        self.connected = connected
        self.rejected = Rejections(logging.getLogger("test"))
        self.handlers: dict[str, object] = {}
        self.published: list[tuple[str, str]] = []

    def subscribe(self, topic, fn, fresh_only=False):
        self.handlers[topic] = fn

    def publish_nowait(self, topic, payload, retain=False):
        self.published.append((topic, payload))

    def online(self, *sites: str, state: str = "online") -> None:
        for s in sites:
            self.handlers["assistant/+/availability"](f"assistant/{s}/availability", state)

    def claim(self, site: str, rank: float, cid: str = "") -> None:
        self.handlers[CLAIMS](CLAIMS, json.dumps({"site": site, "id": cid or f"id-{site}", "rank": rank,
                                                   "score": 0.9, "level_db": -20.0}))


def arbiter(site: str = "hall", window_ms: int = 150, link: Link | None = None, enabled: bool = True):
    cfg = config.load(EXAMPLE)
    cfg.site, cfg.arbitration.window_ms, cfg.arbitration.enabled = site, window_ms, enabled
    link = link or Link()
    return Arbiter(cfg, link), link


def agree(arb: Arbiter, score: float = 0.98, level: float = -20.0, during=None):
    """The decision on a wake word heard with this score and level; `during(link)` runs 30 ms into the
    window, as other boxes' messages arrive."""
    async def main():
        task = asyncio.ensure_future(arb.agree(score, level))
        if during is not None:
            await asyncio.sleep(0.03)
            during(arb.link)
        return await task
    return asyncio.run(main())


def test_rank_is_the_level_weighted_by_the_score():
    assert rank(1.0, -20.0) == -20.0
    assert rank(0.5, -20.0) == pytest.approx(-26.02)
    assert rank(0.95, -20.0) > rank(0.98, -21.0)  # a dB of level outweighs a few hundredths of score
    assert rank(0.0, -500.0) == LEVEL_FLOOR_DB - 60  # finite whatever it is given
    assert math.isfinite(rank(float("nan"), float("-inf")))


def test_the_level_is_the_louder_half_of_the_last_frames():
    assert level_db([]) == LEVEL_FLOOR_DB and level_db([0.0] * 12) == LEVEL_FLOOR_DB
    t = np.arange(1280) / 16000
    tone = (np.sin(2 * np.pi * 440 * t) * 16384).astype(np.float32)
    e = float(np.dot(tone, tone)) / len(tone)
    assert level_db([e] * 6 + [0.0] * 6) == pytest.approx(-9.0, abs=0.1)  # a half-scale sine: RMS -9 dBFS
    assert level_db([e / 4] * 12) == pytest.approx(-15.0, abs=0.1)


def test_the_best_claim_sorts_first_and_ties_go_to_the_first_site():
    claims = [Claim("study", "a", -20.0), Claim("hall", "b", -20.0), Claim("kitchen", "c", -14.5),
              Claim("hall", "a", -20.0)]
    assert [(c.site, c.id) for c in sorted(claims, key=Claim.order)] == [
        ("kitchen", "c"), ("hall", "a"), ("hall", "b"), ("study", "a")]


@pytest.mark.parametrize("payload, reason", [
    ("x" * 600, "claim longer than 512 bytes"),
    ("{nope", "claim not JSON"),
    ("[1, 2]", "claim not a JSON object"),
    ("[" * 250 + "]" * 250, "claim not a JSON object"),  # nesting as deep as the size allows
    ('{"site": "a/b", "id": "1", "rank": -20, "score": 0.9, "level_db": -20}', "claim without a usable site"),
    ('{"site": "a+", "id": "1", "rank": -20, "score": 0.9, "level_db": -20}', "claim without a usable site"),
    ('{"site": 7, "id": "1", "rank": -20, "score": 0.9, "level_db": -20}', "claim without a usable site"),
    ('{"site": "kitchen", "id": "", "rank": -20, "score": 0.9, "level_db": -20}', "claim without a usable id"),
    ('{"site": "kitchen", "id": "1", "rank": "loud", "score": 0.9, "level_db": -20}', "claim rank not a number"),
    ('{"site": "kitchen", "id": "1", "rank": 1e999, "score": 0.9, "level_db": -20}', "claim rank not a number"),
    ('{"site": "kitchen", "id": "1", "rank": NaN, "score": 0.9, "level_db": -20}', "claim rank not a number"),
    ('{"site": "kitchen", "id": "1", "rank": true, "score": 0.9, "level_db": -20}', "claim rank not a number"),
    ('{"site": "kitchen", "id": "1", "rank": 900, "score": 0.9, "level_db": -20}', "claim rank not a number"),
    ('{"site": "kitchen", "id": "1", "rank": -20, "score": 2, "level_db": -20}', "claim score not a number"),
    ('{"site": "kitchen", "id": "1", "rank": -20, "score": 0.9}', "claim level_db not a number"),
])
def test_what_is_not_a_claim_says_why(payload, reason):
    got = parse_claim(payload)
    assert isinstance(got, str) and got.startswith(reason), got


def test_a_claim_reads_back_as_published():
    c = Claim("kitchen", "3f2a9c1b0d4e", rank(0.97, -18.3), 0.97, -18.3)
    assert parse_claim(c.payload(), 5.0) == c and parse_claim(c.payload(), 5.0).received == 5.0
    assert len(c.payload()) < 150


def test_alone_or_without_a_broker_or_switched_off_a_box_answers_at_once():
    for arb, why in [(arbiter()[0], "alone"), (arbiter(link=Link(connected=False))[0], "no broker"),
                     (arbiter(enabled=False)[0], "off")]:
        d = agree(arb)
        assert (d.won, d.why) == (True, why) and d.waited_s < 0.05
    arb, link = arbiter()
    agree(arb)
    (topic, payload), = link.published
    assert topic == CLAIMS and json.loads(payload)["site"] == "hall"
    assert json.loads(payload)["rank"] == rank(0.98, -20.0)
    off, link = arbiter(enabled=False)
    assert link.handlers == {} and not link.published


def test_the_best_box_decides_as_soon_as_every_box_online_has_claimed():
    arb, link = arbiter()
    link.online("kitchen", "study")
    t = time.monotonic()
    d = agree(arb, level=-10.0, during=lambda link: (link.claim("kitchen", -20.0), link.claim("study", -30.0)))
    assert d.won and d.why == "all claimed" and len(d.rivals) == 2
    assert time.monotonic() - t < 0.12  # not the whole window


def test_a_box_that_heard_it_worse_stays_silent_whenever_the_claim_came():
    arb, link = arbiter()
    link.online("kitchen")
    d = agree(arb, level=-30.0, during=lambda link: link.claim("kitchen", -20.0))  # after our own
    assert not d.won and d.winner.site == "kitchen" and d.why == "window"
    assert 0.15 <= d.waited_s < 0.3  # a loser waits the window out: the winner may still go away
    link.claim("kitchen", -20.0, cid="earlier")  # before our own wake word, within the window
    d = agree(arb, level=-30.0)
    assert not d.won and d.winner.id == "earlier"


def test_a_claim_from_outside_the_window_is_another_wake_word():
    arb, link = arbiter(window_ms=50)
    link.online("kitchen")
    link.claim("kitchen", -10.0)
    time.sleep(0.08)
    d = agree(arb, level=-30.0)
    assert d.won and d.rivals == []


def test_equal_claims_go_to_the_site_first_in_alphabetical_order():
    arb, link = arbiter("hall")
    link.online("kitchen", "attic")
    d = agree(arb, 1.0, -20.0, during=lambda link: (link.claim("kitchen", -20.0), link.claim("attic", -25.0)))
    assert d.won  # hall < kitchen
    arb, link = arbiter("study")
    link.online("kitchen")
    d = agree(arb, 1.0, -20.0, during=lambda link: link.claim("kitchen", -20.0))
    assert not d.won and d.winner.site == "kitchen"


def test_a_better_box_that_goes_away_mid_window_does_not_silence_the_others():
    arb, link = arbiter()
    link.online("kitchen", "study")

    def kitchen_claims_then_dies(link):
        link.claim("kitchen", -10.0)
        link.claim("study", -40.0)
        link.online("kitchen", state="offline")  # its last will
    d = agree(arb, level=-30.0, during=kitchen_claims_then_dies)
    assert d.won and [c.site for c in d.rivals] == ["study"]
    assert d.waited_s < 0.12  # every box still online had claimed


def test_a_box_online_that_never_claims_holds_the_decision_for_the_window_at_most():
    arb, link = arbiter(window_ms=100)
    link.online("garage")
    d = agree(arb)
    assert d.won and d.why == "window" and 0.1 <= d.waited_s < 0.2


def test_a_decision_called_off_mid_window_ends_there_even_as_a_claim_comes():
    """A wake word whose turn is called off while the box waits for the others (the service stopping)
    ends at once, also when the cancel comes in the turn of the event loop that brings a rival's claim.
    (Python 3.11's asyncio.wait_for lost such a cancel: the box waited out the window and answered.)"""
    arb, link = arbiter(window_ms=1000)
    link.online("garage", "study")

    async def main():
        task = asyncio.ensure_future(arb.agree(0.98, -20.0))
        await asyncio.sleep(0.03)
        link.claim("garage", -40.0)  # wakes the decision, from the next turn of the loop
        asyncio.get_running_loop().call_soon(task.cancel)  # in that same turn
        t0 = time.monotonic()
        try:
            await task
        except asyncio.CancelledError:
            return time.monotonic() - t0
        return None

    waited = asyncio.run(main())
    assert waited is not None, "the decision went on after it was called off"
    assert waited < 0.2


def test_own_claims_and_claims_from_nowhere_are_not_rivals():
    arb, link = arbiter()
    link.online("kitchen")
    own = []
    link.publish_nowait = lambda topic, payload, retain=False: own.append(payload)

    def echo_and_strangers(link):
        link.handlers[CLAIMS](CLAIMS, own[0])  # the broker hands our own claim back: ignored, not counted
        link.claim("hall", 0.0, cid="twin")  # another box with our site
        link.claim("ghost", 0.0)  # a site that is not online
    d = agree(arb, level=-30.0, during=echo_and_strangers)
    assert d.won and d.rivals == []
    assert link.rejected.counts == {"claim from another box with this box's site 'hall': give each box its own "
                                    "site": 1, "claim from a box that is not online": 1}


def test_a_flood_of_bogus_claims_neither_silences_nor_holds_up_a_box():
    arb, link = arbiter()
    link.online(*(f"box{i}" for i in range(MAX_PEERS + 20)))  # more boxes than are followed
    assert len(arb.peers()) == MAX_PEERS
    assert link.rejected.counts[f"more than {MAX_PEERS} other boxes online"] == 20
    bogus = ["{", "[]", "x" * 5000, '{"site": "box1", "id": "1", "rank": "high"}', '{"site": "nobody", "id": "1", '
             '"rank": 40, "score": 1, "level_db": 0}', json.dumps({"site": "box1", "id": "z", "rank": 1e308})]

    def flood():
        for i in range(20000):
            link.handlers[CLAIMS](CLAIMS, bogus[i % len(bogus)])

    def claims_then_a_flood(link):  # every box online claims, weaker, then the flood (on the MQTT thread)
        for i in range(MAX_PEERS):
            link.claim(f"box{i}", -60.0)
        flooding.start()
    flooding = threading.Thread(target=flood)
    d = agree(arb, level=-30.0, during=claims_then_a_flood)
    flooding.join()
    assert d.won and len(d.rivals) == MAX_PEERS
    assert d.waited_s < 0.3  # the window at most, however busy the MQTT thread is
    assert link.rejected.total >= 20000


def test_a_failure_inside_the_agreement_lets_the_box_answer():
    arb, link = arbiter()
    link.online("kitchen")

    def broken(*a, **k):
        raise RuntimeError("the client is gone")
    link.publish_nowait = broken
    d = agree(arb)
    assert d.won and d.why == "error"


def test_the_config_keys(tmp_path):
    cfg = config.load(EXAMPLE)
    assert (cfg.arbitration.enabled, cfg.arbitration.window_ms) == (True, 150)
    cfg = home_config(tmp_path, "\n[arbitration]\nenabled = false\nwindow_ms = 300\n")
    assert (cfg.arbitration.enabled, cfg.arbitration.window_ms) == (False, 300)
    with pytest.raises(ConfigError, match="'arbitration.window_ms' should be between 10 and 2000"):
        home_config(tmp_path, "\n[arbitration]\nwindow_ms = 0\n")
    with pytest.raises(ConfigError, match="'arbitration.window_ms' should be an integer"):
        home_config(tmp_path, '\n[arbitration]\nwindow_ms = "150"\n')

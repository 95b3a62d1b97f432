"""The assistant as a Home Assistant device on a real broker: its discovery configs (the next timer among
them), a mute switch that works and survives a broker restart, and announcements spoken from
`assistant/<site>/say`."""

from __future__ import annotations

import json

import numpy as np
from conftest import run
from test_home_live import wait_for
from test_voice_e2e import KITCHEN, reply_text

from assistant.audio.io import FileSource
from assistant.broker import LocalBroker
from assistant.mqtt_recorder import MqttRecorder
from assistant.samples import piper, silence, utterance

BASE = "assistant/demo"


def publish(spy: MqttRecorder, topic: str, payload: str) -> None:
    spy.client.publish(topic, payload, qos=1).wait_for_publish(5)


def queued(a) -> bool:
    return not a.presence.inbox.queue.empty()


def test_discovery_configs_are_retained_valid_and_unique(make_assistant):
    with LocalBroker() as b:  # a broker of its own: no configs retained by earlier tests
        a, _, _ = make_assistant(url=b.url)
        with MqttRecorder(b.url, topics=("homeassistant/+/voice_assistant_demo/#",)) as late:  # after: retained
            assert wait_for(lambda: len(late.messages) == 5)
            configs = {t: json.loads(p) for t, p in late.messages}
    assert set(configs) == {f"homeassistant/{c}/voice_assistant_demo/{o}/config" for c, o in
                            [("sensor", "state"), ("sensor", "transcript"), ("sensor", "last_intent"), ("sensor", "next_timer"),
                             ("switch", "mute")]}
    ids = [c["unique_id"] for c in configs.values()]
    assert len(set(ids)) == 5
    for c in configs.values():
        assert c["availability_topic"] == f"{BASE}/availability" and c["state_topic"].startswith(BASE + "/")
        assert c["device"]["identifiers"] == ["voice_assistant_demo"]
    mute = configs["homeassistant/switch/voice_assistant_demo/mute/config"]
    assert (mute["command_topic"], mute["state_topic"]) == (f"{BASE}/mute/set", f"{BASE}/mute")
    assert not any("mute" in d.id for d in a.home.registry.devices.values())  # our own switch is not a light


def test_mute_over_mqtt_silences_the_wake_word_and_unmute_restores(store, make_assistant, spy):
    a, sink, events = make_assistant()
    command = utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, "Turn on the kitchen light."), 1.0)

    publish(spy, f"{BASE}/mute/set", "ON")
    assert wait_for(lambda: queued(a))
    run(a.run(FileSource(pcm=command)))
    assert a.muted and not [e for e in events if e.kind == "wake"]
    spy.settle()
    assert spy.on(KITCHEN) == [] and sink.chunks == []
    with spy.lock:
        said = [p for t, p in spy.messages if t == f"{BASE}/mute"]
        states = [p for t, p in spy.messages if t == f"{BASE}/state"]
    assert said[-1] == "ON" and states[-1] == "muted"

    publish(spy, f"{BASE}/mute/set", "off")
    publish(spy, f"{BASE}/mute/set", "maybe")  # not ON or OFF: ignored
    assert wait_for(lambda: queued(a))
    run(a.run(FileSource(pcm=command)))
    assert not a.muted
    assert wait_for(lambda: spy.on(KITCHEN) == [{"state": "ON"}])
    with spy.lock:
        assert [p for t, p in spy.messages if t == f"{BASE}/mute"][-1] == "OFF"


def test_mute_survives_a_broker_restart(make_assistant):
    b = LocalBroker().start()
    try:
        a, _, _ = make_assistant(url=b.url)
        s = MqttRecorder(b.url)
        publish(s, f"{BASE}/mute/set", "ON")
        assert wait_for(lambda: queued(a))
        run(a.run(FileSource(pcm=silence(0.2))))
        s.close()
        b.stop()  # no persistence: the broker forgets every retained message
        b.start()
        assert wait_for(lambda: a.link.connected, timeout=15)
        with MqttRecorder(b.url, topics=(f"{BASE}/mute", "homeassistant/#")) as late:
            assert wait_for(lambda: (f"{BASE}/mute", "ON") in late.messages and len(late.messages) >= 5)
        assert a.muted
    finally:
        b.close()


def test_announcement_is_spoken(engines, make_assistant, spy):
    a, sink, events = make_assistant()
    publish(spy, f"{BASE}/say", "The washing machine has finished.")
    publish(spy, f"{BASE}/say", "")  # empty: ignored, nothing spoken
    assert wait_for(lambda: queued(a))
    run(a.run(FileSource(pcm=silence(0.5))))
    assert [e.data["text"] for e in events if e.kind == "announcement"] == ["The washing machine has finished."]
    heard = reply_text(engines, sink)
    assert "washing machine" in heard and "finished" in heard
    assert spy.device_messages() == []


def test_announcement_waits_for_the_turn_in_progress(store, engines, make_assistant, spy):
    """An announcement that arrives mid-turn is spoken after the reply, not in the middle of it."""
    a, sink, events = make_assistant()
    command = utterance(0.4, piper(store, "Hey Jarvis."), 0.5, piper(store, "Turn on the kitchen light."), 1.0)
    source = FileSource(pcm=np.concatenate([command, silence(0.5)]))
    a.events.subscribe(lambda e: e.kind == "transcript" and publish(spy, f"{BASE}/say", "Dinner is ready."))
    a.events.subscribe(lambda e: e.kind == "transcript" and wait_for(lambda: queued(a)))
    run(a.run(source))
    kinds = [e.kind for e in events if e.kind in ("transcript", "reply", "announcement")]
    assert kinds == ["transcript", "reply", "announcement", "reply"]
    assert [e.data["text"] for e in events if e.kind == "reply"][1] == "Dinner is ready."


def test_retained_requests_are_not_carried_out_again(make_assistant, spy):
    """A retained "say" or "mute" would be replayed after every reconnect and restart: both are ignored
    and counted, and the box starts unmuted and silent."""
    for topic, payload in ((f"{BASE}/say", "Old news."), (f"{BASE}/mute/set", "ON")):
        spy.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    try:
        a, _, events = make_assistant()
        assert wait_for(lambda: a.link.rejected.counts["retained request ignored"] == 2)
        run(a.run(FileSource(pcm=silence(0.3))))
        assert not a.muted and not [e for e in events if e.kind == "announcement"]
    finally:
        for topic in (f"{BASE}/say", f"{BASE}/mute/set"):
            spy.client.publish(topic, "", qos=1, retain=True).wait_for_publish(5)


def test_a_flood_of_announcements_is_bounded(make_assistant, spy):
    """10,837 queued announcements once held the box; now a few wait and a few a minute are spoken."""
    from assistant.presence import MAX_QUEUED, SAYS_PER_MINUTE

    a, _, events = make_assistant()
    a.player.sink = None  # what is said is not graded here, only how much
    for i in range(200):
        spy.client.publish(f"{BASE}/say", f"Message number {i}.", qos=0)
    assert wait_for(lambda: a.link.rejected.total >= 200 - MAX_QUEUED)
    assert a.presence.inbox.queue.qsize() <= min(MAX_QUEUED, SAYS_PER_MINUTE)
    run(a.run(FileSource(pcm=silence(0.3))))
    assert len([e for e in events if e.kind == "announcement"]) <= min(MAX_QUEUED, SAYS_PER_MINUTE)


def test_the_timers_are_shown_again_after_a_broker_restart_and_at_start(make_assistant):
    """Home Assistant's timer sensor reads the retained timers topic: a broker that forgot it, or a box
    restarted with timers running, publishes it again."""
    b = LocalBroker().start()
    try:
        a, _, _ = make_assistant(url=b.url)
        run(a.handle_text("Set a 10 minute pizza timer."))
        b.stop()  # no persistence: the broker forgets every retained message
        b.start()
        assert wait_for(lambda: a.link.connected, timeout=15)
        timers = lambda rec: [json.loads(p) for t, p in rec.messages if t == f"{BASE}/timers"]  # noqa: E731
        with MqttRecorder(b.url, topics=(f"{BASE}/timers",)) as late:
            assert wait_for(lambda: timers(late))
            assert timers(late)[-1]["count"] == 1 and timers(late)[-1]["next"]["name"] == "pizza"
        a.close()
        a.link.stop()
        again, _, _ = make_assistant(url=b.url)  # restarted: the timer was kept, and is shown at once
        with MqttRecorder(b.url, topics=(f"{BASE}/timers",)) as late:
            assert wait_for(lambda: timers(late) and timers(late)[-1]["count"] == 1)
    finally:
        b.close()


def test_timers_are_announced_at_every_connect_none_before_the_first(make_assistant):
    """Home Assistant's Next timer sensor shows "none" on a box that never had a timer, not "unknown", and
    a broker restarted without persistence learns the running ones again."""
    b = LocalBroker().start()
    try:
        a, _, _ = make_assistant(url=b.url)
        with MqttRecorder(b.url, topics=(f"{BASE}/timers",)) as late:  # subscribed after: what is retained
            assert wait_for(lambda: late.messages)
            assert json.loads(late.messages[-1][1]) == {"count": 0, "next": None, "timers": []}
        a.timers.start(300, "pizza")
        b.stop()
        b.start()
        assert wait_for(lambda: a.link.connected, timeout=15)
        with MqttRecorder(b.url, topics=(f"{BASE}/timers",)) as late:
            assert wait_for(lambda: late.messages)
            timers = json.loads(late.messages[-1][1])
        assert timers["count"] == 1 and timers["next"]["label"] == "pizza timer"
    finally:
        b.close()

"""The systemd notification protocol over a real datagram socket, and the audio sources a service uses."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import numpy as np
import pytest

from assistant import sdnotify
from assistant.audio import io
from assistant.audio.wav import load_pcm16k, write_wav
from assistant.sdnotify import Heartbeat, Watched, notify, watchdog_interval
from assistant.types import FRAME_SAMPLES, SAMPLE_RATE


@pytest.fixture
def manager(tmp_path):
    """A stand-in for systemd: a datagram socket and the environment it gives a service."""
    path = tmp_path / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.setblocking(False)

    def received() -> list[str]:
        out = []
        while True:
            try:
                out.append(s.recv(4096).decode())
            except BlockingIOError:
                return out

    yield {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}, received
    s.close()


def test_notify_sends_one_datagram(manager):
    env, received = manager
    assert notify("READY=1", "STATUS=hello", env=env)
    assert received() == ["READY=1\nSTATUS=hello"]


def test_notify_without_a_manager_does_nothing():
    assert notify("READY=1", env={}) is False


def test_abstract_socket_address():
    name = f"assistant-test-{id(object())}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    try:
        notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "@" + name})
        assert s.recv(100) == b"WATCHDOG=1"
    finally:
        s.close()


def test_watchdog_interval_is_half_the_timeout_and_only_for_this_process():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None


class Frames:
    def __init__(self, n):
        self.n = n

    async def frames(self):
        for _ in range(self.n):
            yield np.zeros(FRAME_SAMPLES, np.int16)


def test_ready_on_the_first_frame(manager):
    env, received = manager
    w = Watched(Frames(10), status="listening on test", env=env)
    asyncio.run(_drain(w))
    assert received() == ["READY=1\nSTATUS=listening on test"]  # the watchdog is the heartbeat's


def test_no_frames_no_ready_and_no_pings(manager):
    env, received = manager
    asyncio.run(_drain(Watched(Frames(0), env=env)))
    assert received() == []


async def _drain(source, limit=None):
    out = []
    async for f in source.frames():
        out.append(f)
        if limit and len(out) >= limit:
            break
    return out


def test_loop_source_repeats_the_file(tmp_path):
    pcm = (np.arange(FRAME_SAMPLES * 3) % 1000).astype(np.int16)
    write_wav(tmp_path / "a.wav", pcm, SAMPLE_RATE)
    src = io.open_source(f"file:{tmp_path / 'a.wav'}")
    assert isinstance(src, io.LoopSource)
    frames = asyncio.run(_drain(src, limit=7))
    assert np.array_equal(np.concatenate(frames[:3]), load_pcm16k(tmp_path / "a.wav"))
    assert np.array_equal(frames[3], frames[0]) and np.array_equal(frames[6], frames[0])


def test_silence_and_null_sink():
    frames = asyncio.run(_drain(io.open_source("silence"), limit=3))
    assert all(len(f) == FRAME_SAMPLES and not f.any() for f in frames)
    assert isinstance(io.open_sink("none"), io.NullSink)
    assert isinstance(io.open_source("hw:1"), io.MicSource)


def heartbeat(env, checks):
    """A heartbeat checked by hand, on a loop of its own (the thread only calls beat() on a timer)."""
    loop = asyncio.new_event_loop()
    hb = Heartbeat(checks, env=env)
    hb._loop = loop
    return hb, loop


def test_the_heartbeat_pings_while_every_check_passes(manager):
    env, received = manager
    hb, loop = heartbeat(env, [lambda: None])
    for _ in range(3):
        hb.beat()
        loop.run_until_complete(asyncio.sleep(0))  # the loop answers
    assert received() == ["WATCHDOG=1"] * 3 and hb.pings == 3
    loop.close()


def test_a_failing_check_stops_the_pings_and_says_why_until_it_clears(manager):
    env, received = manager
    why = ["no audio frames for 12 s"]
    hb, loop = heartbeat(env, [lambda: why[0]])
    hb.beat()
    loop.run_until_complete(asyncio.sleep(0))
    hb.beat()
    loop.run_until_complete(asyncio.sleep(0))
    assert received() == ["STATUS=no audio frames for 12 s"]  # said once, no ping
    why[0] = None
    hb.beat()
    assert received() == ["WATCHDOG=1\nSTATUS=listening"]
    loop.close()


def test_a_loop_that_does_not_answer_stops_the_pings(manager):
    env, received = manager
    hb, loop = heartbeat(env, [lambda: None])
    hb.beat()  # the loop never runs: the ping it was asked for stays unanswered
    hb.beat()
    assert received() == ["WATCHDOG=1", "STATUS=the event loop does not answer"]
    loop.close()


def test_a_manager_out_of_reach_costs_a_message_never_the_service(tmp_path):
    """The service manager's socket gone (systemd re-executing itself), then full: each message is dropped
    and counted, nothing is raised into the heartbeat's thread or waited on, and pings go through again
    once it takes them."""
    path = tmp_path / "notify"
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
    hb, loop = heartbeat(env, [lambda: None])
    before = sdnotify.failed
    hb.beat()  # nobody there
    loop.run_until_complete(asyncio.sleep(0))
    assert sdnotify.failed == before + 1 and hb.pings == 0
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    try:
        hb.beat()
        loop.run_until_complete(asyncio.sleep(0))
        assert s.recv(100) == b"WATCHDOG=1" and hb.pings == 1
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        filler.connect(str(path))
        with pytest.raises(BlockingIOError):
            while True:  # the manager busy: its queue fills up
                filler.send(b"STATUS=filler")
        sent = []
        t = threading.Thread(target=lambda: sent.append(notify("WATCHDOG=1", env=env)), daemon=True)
        t.start()
        t.join(2)
        assert sent == [False], "a full queue held up the caller"
        assert sdnotify.failed == before + 2
        filler.close()
    finally:
        s.close()
        loop.close()


LONG = " ".join(["The washing machine has finished its long programme and the laundry is ready."] * 6)


async def announce_with_heartbeat(a, hb) -> None:
    hb.start(asyncio.get_running_loop())
    try:
        await a.run(io.FileSource(pcm=np.zeros(SAMPLE_RATE // 2, np.int16)))
    finally:
        hb.stop()


def test_a_long_announcement_keeps_the_watchdog_fed(manager, make_assistant):
    """The pings used to come with audio frames only, and none are taken while the box speaks."""
    env, received = manager
    env = {**env, "WATCHDOG_USEC": "200000"}  # a ping every 0.1 s
    a, sink, events = make_assistant()
    a.presence.inbox.queue.put(("say", LONG))
    hb = Heartbeat([a.alive], env=env)
    asyncio.run(announce_with_heartbeat(a, hb))
    spoke_s = sum(len(c) for c in sink.chunks) / sink.rate
    assert spoke_s > 10 and [e.kind for e in events].count("announcement") == 1
    pings = received().count("WATCHDOG=1")
    assert pings >= 5 and hb.why is None, (pings, hb.why)


def test_a_hung_voice_stops_the_pings(manager, make_assistant, engines, monkeypatch):
    from assistant import workers

    class Hangs:
        sample_rate = engines.tts.sample_rate

        def sentences(self, text):
            time.sleep(1.0)  # far past the limit below: as if the voice had hung
            yield from engines.tts.sentences(text)

    env, received = manager
    env = {**env, "WATCHDOG_USEC": "200000"}
    monkeypatch.setitem(workers.LIMITS_S, "tts", 0.3)
    a, _, _ = make_assistant()
    a.player.tts = Hangs()
    a.presence.inbox.queue.put(("say", "Dinner is ready."))
    hb = Heartbeat([a.alive], env=env)
    asyncio.run(announce_with_heartbeat(a, hb))
    assert any(m.startswith("STATUS=the tts worker has been busy") for m in received())

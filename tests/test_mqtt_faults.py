"""The connection when things go wrong: the broker stops and comes back, TLS with a password, and the
one-shot `assistant ask` against a broker holding retained announcements."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import EXAMPLE, home_config, home_file, run
from home_sim import Simulator
from test_home_live import wait_for

from assistant import config
from assistant.broker import LocalBroker, free_port
from assistant.engines.load import Engines
from assistant.mqtt_link import MqttLink
from assistant.mqtt_recorder import MqttRecorder
from assistant.pipeline import Assistant


def test_ask_commands_discovered_devices_by_name(broker):
    sim = Simulator(broker.url)
    sim.announce()
    try:
        for text, device in [("turn on the hall spot", "hall_spot"), ("turn on the porch light", "porch")]:
            done = subprocess.run([sys.executable, "-m", "assistant", "ask", "--config", str(EXAMPLE),
                                   "--mqtt", broker.url, text], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "Turned on" in done.stdout
            assert wait_for(lambda: sim.on(device))
    finally:
        sim.close()


def make(url: str, timeout_s: float) -> tuple[Assistant, MqttLink]:
    cfg = config.load(EXAMPLE)
    cfg.mqtt.url, cfg.mqtt.command_timeout_s = url, timeout_s
    link = MqttLink.from_config(cfg.mqtt, "assistant/demo/availability")
    link.start()
    assert link.wait_connected(5)
    return Assistant(cfg, Engines(), link), link


KITCHEN = "zigbee2mqtt/kitchen_light/set"


def sends_at_once(link: MqttLink) -> bool:
    """Nagle's algorithm is off on the link's connection: a command is not held back for the broker's
    delayed acknowledgement of the message before it (40 ms, twice per command, before it was off)."""
    return link.client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_the_private_broker_leaves_nothing_behind():
    """The demo's own broker (and the tests'): stopped and restarted on its port it keeps its files; done
    with, its process and its config and log are gone."""
    with LocalBroker() as b:
        where = b.dir
        b.stop()
        b.start()
        assert (where / "mosquitto.conf").exists()
        proc = b.proc
    assert proc.poll() is not None and not where.exists()


@pytest.mark.slow
def test_broker_stops_and_comes_back():
    port = free_port()
    b = LocalBroker(port).start()
    a, link = make(b.url, timeout_s=1.5)
    try:
        spy = MqttRecorder(b.url)
        assert run(a.handle_text("turn on the kitchen light")).ok  # before
        assert wait_for(lambda: spy.on(KITCHEN) == [{"state": "ON"}])
        assert sends_at_once(link)
        spy.close()
        b.close()
        assert wait_for(lambda: not link.connected)

        t = time.monotonic()  # during: answered as failed within the configured time
        out = run(a.handle_text("turn off the kitchen light"))
        took = time.monotonic() - t
        assert not out.ok and "nothing was switched" in out.reply and took < 1.5 + 1.0

        b = LocalBroker(port).start()
        spy = MqttRecorder(b.url)
        assert wait_for(lambda: link.connected, 35)  # it reconnects by itself
        assert wait_for(lambda: ("assistant/demo/availability", "online") in spy.messages)
        assert run(a.handle_text("turn on the bedroom light")).ok  # after
        assert sends_at_once(link)  # the new connection too
        assert wait_for(lambda: spy.on("zigbee2mqtt/bedroom_light/set") == [{"state": "ON"}])
        time.sleep(0.3)
        assert spy.on(KITCHEN) == []  # the failed command never arrives late
        spy.close()

        # During an outage that ends within the command timeout: delivered after the reconnect.
        a2, link2 = make(b.url, timeout_s=8)
        b.stop()
        assert wait_for(lambda: not link2.connected)
        restart = threading.Timer(0.3, lambda: b.start())
        restart.start()
        out = run(a2.handle_text("turn off the bedroom light"))
        restart.join()
        assert out.ok, out.reply
        a2.close()
        link2.stop()
    finally:
        a.close()
        link.stop()
        b.close()


@pytest.mark.slow
def test_a_hung_broker_is_given_no_command_to_carry_out_when_it_wakes():
    with LocalBroker() as b, MqttRecorder(b.url) as spy:
        a, link = make(b.url, timeout_s=1.0)
        try:
            b.freeze()  # connections stay open: whatever is written waits in the broker's socket
            out = run(a.handle_text("turn on the kitchen light"))
            assert not out.ok and "nothing was switched" in out.reply
            b.thaw()
            assert wait_for(lambda: link.connected)
            assert run(a.handle_text("turn off the kitchen light")).ok
            assert wait_for(lambda: spy.on(KITCHEN) == [{"state": "OFF"}])
            time.sleep(0.3)
            assert spy.on(KITCHEN) == [{"state": "OFF"}]  # the failed ON never arrives
        finally:
            b.thaw()
            a.close()
            link.stop()


@pytest.fixture(scope="module")
def tls_broker():
    # mosquitto started as root drops to its own user before reading these: they must be readable to it
    d = Path(tempfile.mkdtemp(prefix="assistant-tls-"))
    d.chmod(0o755)

    def sh(*cmd):
        subprocess.run(cmd, check=True, capture_output=True, cwd=d)

    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test ca",
       "-keyout", "ca.key", "-out", "ca.crt")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
       "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
       "-days", "1", "-extfile", "san.ext", "-out", "server.crt")
    sh("mosquitto_passwd", "-b", "-c", str(d / "passwd"), "house", "s3cret")
    extra = (f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"
             f"allow_anonymous false\npassword_file {d}/passwd\n")
    for f in d.iterdir():
        f.chmod(0o644)
    try:
        with LocalBroker(extra=extra) as b:
            yield b, d
    finally:
        shutil.rmtree(d)


def tls_config(tmp_path, d, port, password):
    tls = (f'url = "mqtts://127.0.0.1:{port}"\nusername = "house"\npassword = "{password}"\n'
           f'ca_file = "{d}/ca.crt"\ncommand_timeout_s = 2.0')
    return home_config(tmp_path, base=EXAMPLE.read_text().replace('url = "mqtt://127.0.0.1:1883"', tls))


def test_tls_with_password(tls_broker, tmp_path):
    b, d = tls_broker
    got = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.tls_set(ca_certs=str(d / "ca.crt"))
    sub.username_pw_set("house", "s3cret")
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload.decode()))
    ready = threading.Event()
    sub.on_subscribe = lambda *a: ready.set()
    sub.connect("127.0.0.1", b.port)
    sub.subscribe("zigbee2mqtt/#", qos=1)
    sub.loop_start()
    try:
        assert ready.wait(5)
        cfg = tls_config(tmp_path, d, b.port, "s3cret")
        link = MqttLink.from_config(cfg.mqtt, "assistant/demo/availability")
        link.start()
        assert link.wait_connected(5), link.status()
        assert sends_at_once(link)
        a = Assistant(cfg, Engines(), link)
        assert run(a.handle_text("turn on the kitchen light")).ok
        assert wait_for(lambda: got == [("zigbee2mqtt/kitchen_light/set", json.dumps({"state": "ON"}))])
        a.close()
        link.stop()

        wrong = MqttLink.from_config(tls_config(tmp_path, d, b.port, "wrong").mqtt, "assistant/demo/availability")
        wrong.start()
        assert not wrong.wait_connected(1.5)
        a = Assistant(cfg, Engines(), wrong)
        out = run(a.handle_text("turn off the kitchen light"))
        assert not out.ok and "nothing was switched" in out.reply
        a.close()
        wrong.stop()
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_tls_files_are_checked(tmp_path):
    p = home_file(tmp_path, '[mqtt]\nurl = "mqtts://127.0.0.1:8883"\nca_file = "missing.crt"\n')
    with pytest.raises(config.ConfigError, match="'mqtt.ca_file': no such file"):
        config.load(p)

"""The units, checked by systemd itself against the layout the install script creates."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ["assistant.service", "assistant-firstboot.service"]
HOST_UNITS = Path("/usr/lib/systemd/system")


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def layout(tmp_path):
    """The installed file layout: systemd's own units, ours, and the programs our units start."""
    units = tmp_path / "usr/lib/systemd/system"
    shutil.copytree(HOST_UNITS, units, symlinks=True)
    for u in UNITS:
        shutil.copy(ROOT / "systemd" / u, units / u)
    for prog in ["opt/assistant/venv/bin/assistant", "usr/libexec/assistant/import-boot-config"]:
        p = tmp_path / prog
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#!/bin/sh\n")
        p.chmod(0o755)
    return tmp_path


def verify(root: Path) -> subprocess.CompletedProcess:
    return analyze("verify", f"--root={root}", *[f"/usr/lib/systemd/system/{u}" for u in UNITS])


def test_units_verify(layout):
    done = verify(layout)
    assert done.returncode == 0, done.stderr
    assert "assistant" not in done.stderr, done.stderr  # no warning about our units either


def unit_settings(name: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in (ROOT / "systemd" / name).read_text().splitlines()
            if line.startswith(f"{key}=")]


def test_the_service_may_use_the_hailo_npu(layout):
    assert "char-hailo* rw" in unit_settings("assistant.service", "DeviceAllow")
    assert "closed" in unit_settings("assistant.service", "DevicePolicy")  # and still nothing else


def test_verify_checks_device_allow(layout):
    """What makes the clean verify above mean something for DeviceAllow=: a bad entry is reported."""
    dropin = layout / "usr/lib/systemd/system/assistant.service.d/bad.conf"
    dropin.parent.mkdir()
    dropin.write_text("[Service]\nDeviceAllow=/not-dev/hailo0 rw\n")
    assert "Invalid device node path '/not-dev/hailo0'" in verify(layout).stderr


def test_verify_notices_a_missing_program(layout):
    (layout / "opt/assistant/venv/bin/assistant").unlink()
    done = verify(layout)
    assert done.returncode != 0 and "/opt/assistant/venv/bin/assistant" in done.stderr


def test_security_exposure_of_the_service(layout):
    done = analyze("security", "--offline=yes", f"--root={layout}", "--no-pager",
                   str(layout / "usr/lib/systemd/system/assistant.service"))
    m = re.search(r"Overall exposure level for assistant.service: ([\d.]+)", done.stdout)
    assert m, done.stdout + done.stderr
    print(f"systemd-analyze security: assistant.service exposure {m.group(1)}")
    assert float(m.group(1)) <= 2.5, done.stdout


def test_sysusers_puts_the_service_user_in_the_audio_group(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "group").write_text("root:x:0:\naudio:x:29:\n")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    conf = ROOT / "systemd/sysusers.d/assistant.conf"
    done = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(conf)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    user = next(line.split(":") for line in (etc / "passwd").read_text().splitlines() if line.startswith("assistant:"))
    assert int(user[2]) < 1000 and user[5] == "/var/lib/assistant"  # a system user
    audio = next(line for line in (etc / "group").read_text().splitlines() if line.startswith("audio:"))
    assert audio.split(":")[3] == "assistant"


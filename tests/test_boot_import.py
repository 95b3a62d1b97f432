"""The boot-partition config import (systemd/import-boot-config), run as the first boot runs it, on a
card and an /etc in a temporary folder, with the app's own `assistant check-config` as the judge."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "systemd/import-boot-config"
OLD = 'site = "kitchen"\n'


@pytest.fixture
def box(tmp_path):
    """(card, live config): a card with nothing on it yet and a box whose live config is OLD."""
    assert os.geteuid() == 0, "this test needs root (CI runs as root): it checks the ownership the import sets"
    card = tmp_path / "boot/firmware"
    card.mkdir(parents=True)
    live = tmp_path / "etc/assistant/assistant.toml"
    live.parent.mkdir(parents=True)
    live.write_text(OLD)
    return card, live


def import_config(card: Path, live: Path, check: str = f"{sys.executable} -m assistant check-config"):
    return subprocess.run([str(SCRIPT), str(card / "assistant.toml"), str(live), "root"], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "CHECK_CONFIG": check}, timeout=60)


def private(path: Path) -> bool:
    st = path.stat()
    return st.st_mode & 0o777 == 0o640 and st.st_uid == 0


def test_a_good_config_replaces_the_live_one_and_keeps_it_as_backup(box):
    card, live = box
    (card / "assistant.toml").write_bytes('\ufeffsite = "hall"\n[mqtt]\npassword = "secret"\n'.encode())
    done = import_config(card, live)
    assert done.returncode == 0, done.stderr
    assert 'site = "hall"' in live.read_text() and private(live)
    assert live.with_name("assistant.toml.bak").read_text() == OLD
    assert private(live.with_name("assistant.toml.bak"))
    assert list(card.iterdir()) == []  # the FAT copy, which holds a password, is gone
    assert not live.with_name("assistant.toml.new").exists()


def test_a_bad_config_leaves_the_live_one_and_says_why_on_the_card(box):
    card, live = box
    (card / "assistant.toml").write_text('site = "hall"\n[mqtt]\nurl = "http://broker"\n')
    done = import_config(card, live)
    assert done.returncode == 0, done.stderr
    assert live.read_text() == OLD
    assert sorted(p.name for p in card.iterdir()) == ["assistant-config-error.txt", "assistant.toml.rejected"]
    assert 'url = "http://broker"' in (card / "assistant.toml.rejected").read_text()
    reason = (card / "assistant-config-error.txt").read_text()
    assert "assistant.toml: 'mqtt.url' should look like mqtt://host:1883" in reason
    assert "previous config" in reason and str(live.parent) not in reason
    assert "mqtt.url" in done.stderr  # and in the journal
    assert sorted(p.name for p in live.parent.iterdir()) == ["assistant.toml"]


def test_a_good_config_after_a_rejected_one_clears_the_reason(box):
    card, live = box
    (card / "assistant.toml").write_text("[wake]\nthreshold = 2\n")
    assert import_config(card, live).returncode == 0
    (card / "assistant.toml").write_text('site = "hall"\n')
    assert import_config(card, live).returncode == 0
    assert list(card.iterdir()) == [] and 'site = "hall"' in live.read_text()


def test_a_check_that_cannot_run_changes_nothing_and_fails(box):
    card, live = box
    (card / "assistant.toml").write_text('site = "hall"\n')
    done = import_config(card, live, check="/nonexistent/assistant check-config")
    assert done.returncode != 0 and "could not check" in done.stderr
    assert live.read_text() == OLD and (card / "assistant.toml").exists()  # the next boot tries again
    assert sorted(p.name for p in live.parent.iterdir()) == ["assistant.toml"]

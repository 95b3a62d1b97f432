"""The SD card image, assembled without mounting anything: its partition table and file layout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTOR = 512


def sh(*cmd: str, **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A small root (the files the install script lays down) and the image's boot folder."""
    assert os.geteuid() == 0, "mkfs.ext4 -d keeps owners only as root (CI runs as root)"
    tmp = tmp_path_factory.mktemp("img")
    rootfs = tmp / "root"
    units = rootfs / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for u in ("assistant.service", "assistant-firstboot.service"):
        shutil.copy(ROOT / "systemd" / u, units / u)
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "assistant.service").symlink_to("/usr/lib/systemd/system/assistant.service")
    (rootfs / "etc/assistant").mkdir()
    shutil.copy(ROOT / "image/assistant.toml", rootfs / "etc/assistant/assistant.toml")
    (rootfs / "etc/assistant/assistant.toml").chmod(0o640)
    boot = tmp / "boot"
    shutil.copytree(ROOT / "image/boot", boot)
    (boot / "assistant.toml").write_text('site = "kitchen"\n')
    out = tmp / "assistant.img"
    sh(str(ROOT / "image/build-img.sh"), str(rootfs), str(boot), str(out), "64")
    return out, boot


def partitions(img: Path) -> dict:
    return json.loads(sh("sfdisk", "--json", str(img)))["partitiontable"]


def test_partition_table(image):
    img, _ = image
    table = partitions(img)
    assert table["label"] == "dos" and table["id"] == "0x5ca1ab1e"
    boot, root = table["partitions"]
    assert (boot["start"], boot["size"], boot["type"], boot.get("bootable")) == (8192, 64 * 2048, "c", True)
    assert root["start"] == boot["start"] + boot["size"] and root["type"] == "83"
    assert (root["start"] + root["size"]) * SECTOR == img.stat().st_size


def test_boot_partition_is_fat_with_our_files(image):
    img, boot = image
    at = f"{img}@@{partitions(img)['partitions'][0]['start'] * SECTOR}"
    listing = sh("mdir", "-b", "-i", at, "::")
    assert {"::/cmdline.txt", "::/config.txt", "::/assistant.toml"} <= set(listing.split())
    cmdline = sh("mtype", "-i", at, "::cmdline.txt")
    assert cmdline == (boot / "cmdline.txt").read_text()
    assert "root=PARTUUID=5ca1ab1e-02" in cmdline  # the disk id the table carries, partition 2


def test_root_partition_is_ext4_with_the_units_enabled(image, tmp_path):
    img, _ = image
    root = partitions(img)["partitions"][1]
    part = tmp_path / "root.ext4"
    sh("dd", f"if={img}", f"of={part}", f"bs={SECTOR}", f"skip={root['start']}", f"count={root['size']}",
       "status=none")
    assert "rootfs" in sh("e2label", str(part))
    unit = sh("debugfs", "-R", "cat /usr/lib/systemd/system/assistant.service", str(part))
    assert unit == (ROOT / "systemd/assistant.service").read_text()
    link = sh("debugfs", "-R", "stat /etc/systemd/system/multi-user.target.wants/assistant.service", str(part))
    assert 'Fast link dest: "/usr/lib/systemd/system/assistant.service"' in link
    conf = sh("debugfs", "-R", "stat /etc/assistant/assistant.toml", str(part))
    assert "Mode:  0640" in conf


def _install_sh_packages() -> set[str]:
    text = (ROOT / "image/install.sh").read_text()
    return set(text.split("for p in ", 1)[1].split(";", 1)[0].split())


def test_pi_gen_stage_layout():
    stage = ROOT / "image/pi-gen/stage-assistant"
    for script in (stage / "prerun.sh", stage / "00-assistant/01-run.sh"):
        assert os.access(script, os.X_OK), f"{script.name} must be executable for pi-gen"
        sh("bash", "-n", str(script))
    assert (stage / "EXPORT_IMAGE").exists()
    assert set((stage / "00-assistant/00-packages").read_text().split()) == _install_sh_packages()
    assert (stage / "00-assistant/files/assistant.toml.example").read_text() == (ROOT / "image/assistant.toml").read_text()


def test_rpi_image_gen_layer_installs_the_same_packages_with_the_same_script():
    text = (ROOT / "image/rpi-image-gen/assistant.yaml").read_text()
    meta, body = text.split("# METAEND\n")
    assert meta.startswith("# METABEGIN") and "X-Env-Layer-Name: assistant" in meta
    packages = {line.strip()[2:] for line in body.split("customize-hooks")[0].splitlines()
                if line.strip().startswith("- ")}
    assert packages == _install_sh_packages()
    assert "install.sh /tmp/assistant-payload" in body


def test_imager_repository_json_supports_os_customisation():
    entry, = json.loads((ROOT / "image/rpi-imager.json").read_text())["os_list"]
    # Imager drops an entry whose init_format it does not know; these are the ones that carry its OS
    # customisation, and trixie-based Raspberry Pi OS takes it through cloud-init.
    assert entry["init_format"] == "cloudinit-rpi"
    assert "pi5-64bit" in entry["devices"]
    for key in ("name", "description", "url", "extract_size", "extract_sha256", "image_download_size",
                "image_download_sha256", "release_date"):
        assert key in entry


SYSTEM_PACKAGES = "/usr/lib/python3/dist-packages"  # Debian's, where python3-h10-hailort puts hailo_platform


def test_the_venv_reaches_the_system_packages_only_after_its_own(tmp_path):
    venv = tmp_path / "venv"
    sh("/usr/bin/python3", "-m", "venv", "--without-pip", str(venv))
    py = str(venv / "bin/python")
    site = sh(py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    search_path = [py, "-c", "import sys; print('\\n'.join(sys.path))"]
    assert SYSTEM_PACKAGES not in sh(*search_path).split()
    shutil.copy(ROOT / "image/system-dist-packages.pth", site)
    found = sh(*search_path).split()
    assert found.index(site) < found.index(SYSTEM_PACKAGES)  # the venv's own packages win


def test_install_adds_the_system_packages_only_after_pip():
    steps = (ROOT / "image/install.sh").read_text().splitlines()
    removed, pip, added = (next(i for i, line in enumerate(steps) if what in line) for what in
                           ('rm -f "$site/system-dist-packages.pth"', '"${pip[@]}" assistant', 'pth" "$site/"'))
    assert removed < pip < added
    assert "system-dist-packages.pth" in (ROOT / "image/payload.sh").read_text()

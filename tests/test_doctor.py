import subprocess
import sys

from lesson_utils import doctor


def test_doctor_prints_versions_device_widgets_and_data():
    result = subprocess.run([sys.executable, "-m", "lesson_utils", "doctor"],
                            capture_output=True, text=True, timeout=120)
    out = result.stdout
    for word in ("Python", "torch", "torchvision", "ipywidgets", "jupyterlab", "device",
                 "widgets", "digits data", "course backbone"):
        assert word in out, f"{word!r} missing from doctor output:\n{out}"
    assert result.returncode in (0, 1)


def test_missing_backbone_says_how_to_rebuild(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(doctor, "BACKBONE", tmp_path / "tinyresnet_shapes.pt")
    assert doctor.main() == 1
    out = capsys.readouterr().out
    assert "FIX" in out and "python -m lesson_utils.pretrain" in out


def test_corrupt_backbone_is_reported(monkeypatch, tmp_path, capsys):
    weights, card = tmp_path / "w.pt", tmp_path / "w.json"
    weights.write_bytes(b"abc")
    card.write_text('{"sha256": "0000", "architecture": {}, "image_size": 16, "val_accuracy": 1}')
    monkeypatch.setattr(doctor, "BACKBONE", weights)
    checks = {c.name: c for c in doctor.run_checks()}
    assert not checks["course backbone"].ok
    assert "corrupt or was changed" in checks["course backbone"].detail


def test_bad_device_override_is_reported(monkeypatch):
    monkeypatch.setenv("LESSON_DEVICE", "nonsense")
    checks = {c.name: c for c in doctor.run_checks()}
    assert not checks["device"].ok and "LESSON_DEVICE" in checks["device"].detail

"""``python -m lesson_utils doctor``: is this machine ready for the course?

It prints the versions that matter, the device the lessons would use, whether widgets can
render in JupyterLab, and whether the course data and checkpoints are present. Each problem
comes with what to do about it.
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Check", "run_checks", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it is fine, and what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except Exception:
        return None


def _versions() -> list[Check]:
    checks = [Check("Python", sys.version_info >= (3, 10), platform.python_version(),
                    "use Python 3.10 or newer")]
    for module, label in [("torch", "torch"), ("torchvision", "torchvision"),
                          ("ipywidgets", "ipywidgets"), ("jupyterlab", "jupyterlab"),
                          ("matplotlib", "matplotlib"), ("sklearn", "scikit-learn")]:
        version = _version(module)
        checks.append(Check(label, version is not None, version or "missing",
                            'run `make lab` (or `pip install -e ".[dev]"`) in the repo'))
    return checks


def _device() -> Check:
    try:
        from lesson_utils.repro import pick_device

        device = pick_device()
    except ValueError as exc:
        return Check("device", False, str(exc), "unset LESSON_DEVICE or name an available device")
    note = {"cpu": "every lesson is sized for a 2-core CPU",
            "cuda": "lessons will use the GPU", "mps": "lessons will use Apple's GPU"}
    return Check("device", True, f"{device} ({note.get(device.type, '')})")


def _widgets() -> Check:
    if _version("ipywidgets") is None:
        return Check("widgets", False, "ipywidgets is not installed",
                     "pip install 'ipywidgets>=8'")
    labext = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / \
        "jupyterlab-manager"
    if not labext.is_dir():
        return Check("widgets", False, "the JupyterLab widget extension is missing, so sliders "
                     "would show as text ('IProgress not found', 'Error displaying widget')",
                     "pip install 'jupyterlab_widgets>=3' in the environment that runs "
                     "JupyterLab, then restart JupyterLab")
    return Check("widgets", True, "ipywidgets and the JupyterLab widget extension are installed")


def _data() -> list[Check]:
    checks = []
    try:
        from sklearn.datasets import load_digits

        n = len(load_digits().target)
        checks.append(Check("digits data", True, f"{n} images bundled with scikit-learn"))
    except Exception as exc:  # pragma: no cover - depends on the install
        checks.append(Check("digits data", False, f"cannot load: {exc}",
                            "reinstall scikit-learn"))
    checks.append(Check("shapes data", True, "generated on the fly (nothing to download)"))
    checks.append(_course_backbone())
    return checks


#: The checkpoint the doctor checks; ``None``: the course's (``pretrained.COURSE_CHECKPOINT``).
BACKBONE: Path | None = None


def _course_backbone() -> Check:
    try:
        from lesson_utils.pretrained import COURSE_CHECKPOINT, verify_checkpoint

        path = BACKBONE or COURSE_CHECKPOINT
        card = verify_checkpoint(path)
    except ImportError as exc:  # pragma: no cover - a broken install
        return Check("course backbone", False, f"cannot check: {exc}", "reinstall the course")
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        return Check("course backbone", False, str(exc).split(";")[0],
                     "run `python -m lesson_utils.pretrain` to rebuild it, or "
                     "`git checkout data/pretrained` to restore the committed file")
    return Check("course backbone", True, f"{path.name}: sha256 matches its card, "
                 f"val accuracy {card.get('val_accuracy')}")


def _torch_hub() -> Check:
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    files = sorted(p.name for p in folder.glob("*.pth")) if folder.is_dir() else []
    if files:
        return Check("torchvision weights", True, f"{len(files)} cached in {folder}: "
                     + ", ".join(files[:5]))
    return Check("torchvision weights", True,
                 f"none cached in {folder} (optional: lesson 02 works offline without them; "
                 "online, load_torchvision_model('resnet18') downloads them once)")


def run_checks() -> list[Check]:
    """All checks, in the order they are printed.

    Example:
        >>> names = [c.name for c in run_checks()]
        >>> names[:3]
        ['Python', 'torch', 'torchvision']
    """
    return [*_versions(), _device(), _widgets(), *_data(), _torch_hub()]


def main() -> int:
    """Print the report; exit status 1 when something needs fixing."""
    checks = run_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'ok ' if c.ok else 'FIX'}  {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            print(f"     {'':<{width}}  -> {c.fix}")
    problems = sum(not c.ok for c in checks)
    print("\nAll good: run `make lab` and open notebooks/01_models.ipynb." if not problems
          else f"\n{problems} thing(s) to fix, see the arrows above.")
    return 1 if problems else 0

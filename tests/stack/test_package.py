"""The app image installs Loyalloop with `pip install .`: every module and data file of the
app's packages must be in the wheel, or the image fails where the checkout works."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests", ".venv", "node_modules", "build", ".git"}


def _package_files() -> set[str]:
    """Every file under a top-level package of the checkout (a folder with __init__.py)."""
    files: set[str] = set()
    for init in ROOT.glob("*/__init__.py"):
        package = init.parent
        if package.name in NOT_SHIPPED:
            continue
        for path in package.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(path.relative_to(ROOT).as_posix())
    return files


def test_wheel_holds_every_module_and_data_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("loyalloop-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_package_files() - shipped)
    assert not missing, f"not installed by `pip install .` (add to pyproject.toml): {missing}"
    for module in ("worker.py", "settings.py", "temporal_client.py"):
        assert module in shipped
    entry_points = next(name for name in shipped if name.endswith("entry_points.txt"))
    assert "loyalloop = cli.main:run" in zipfile.ZipFile(wheel).read(entry_points).decode()

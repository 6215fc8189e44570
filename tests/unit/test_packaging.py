"""A non-editable install carries the runtime (Dockerfile template, launcher, uWSGI defaults)
and the dashboard's page."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_python_runtime(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("dynosim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("Dockerfile.template", "dyno-launch", "build-step"):
        assert f"dynosim/runtimes/python/{name}" in names
    assert "dynosim/cli.py" in names
    for name in ("index.html", "dashboard.js", "dashboard.css"):  # the dashboard's page
        assert f"dynosim/dashboard/static/{name}" in names

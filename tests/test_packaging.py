"""The package as a user installs it: `python -m build` gives a wheel and an sdist; the wheel installs into a fresh
virtual environment (with the pinned dependencies of constraints.txt) and trains the example there, and the sdist
installs over it and runs the command."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT, timeout=600)
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(out.iterdir())
    return wheels[0], sdists[0]


def test_wheel_and_sdist_hold_the_package_and_its_type_marker(distributions: tuple[Path, Path]) -> None:
    wheel, sdist = distributions
    expected_version = version("lightning-stability")
    assert wheel.name.startswith(f"lightning_stability-{expected_version}-py3-none-any")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "__init__.py",
        "py.typed",
        "cli/__init__.py",
        "theory/certificate.py",
        "callbacks/base.py",
        "example/data.py",
    ):
        assert f"lightning_stability/{module}" in names
    assert not any(name.startswith("tests/") for name in names)
    metadata = zipfile.ZipFile(wheel).read(f"lightning_stability-{expected_version}.dist-info/METADATA").decode()
    assert "Classifier: Typing :: Typed" in metadata
    assert "Provides-Extra: examples" in metadata and "Provides-Extra: dev" in metadata
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(member.endswith("lightning_stability/py.typed") for member in members)


def test_wheel_installs_in_a_fresh_venv_and_trains_the_example(
    distributions: tuple[Path, Path], tmp_path: Path
) -> None:
    wheel, sdist = distributions
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    constraints = ROOT / "constraints.txt"
    run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(constraints), f"{wheel}[examples]"],
        cwd=tmp_path,
        timeout=1200,
    )
    command = environment / "bin" / "lightning-stability"
    # run outside the source tree, so the installed package is the one imported
    where = run([str(python), "-c", "import lightning_stability as l; print(l.__file__, l.__version__)"], cwd=tmp_path)
    location, installed_version = where.stdout.split()
    assert Path(location).is_relative_to(environment) and installed_version == version("lightning-stability")
    helped = run([str(command), "--help"], cwd=tmp_path)
    assert "report" in helped.stdout and "check-data" in helped.stdout
    fitted = run(
        [
            str(command),
            "fit",
            "--config",
            str(ROOT / "configs" / "mnist_abs_mlp.yaml"),
            "--trainer.max_epochs=1",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
        ],
        cwd=tmp_path,
        timeout=900,
    )
    assert "[lightning-stability] last check: training accuracy" in fitted.stdout
    assert list((tmp_path / "logs").rglob("report.png"))
    # the sdist builds and installs over it (dependencies already there) and its command runs
    run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(sdist)],
        cwd=tmp_path,
        timeout=600,
    )
    assert "check-data" in run([str(command), "--help"], cwd=tmp_path).stdout

"""The package as pip sees it: one dependency list, exact pins where the page's scripts come from, a lock, and a
wheel that carries the bundled model, the known configs and the page's assets."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines(path: Path) -> list[str]:
    """Requirement lines of a requirements file: no comments, no -r/-c options."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def _pins(lines: list[str]) -> dict[str, str]:
    return {_normalise(name): version for name, version in (line.split("==", 1) for line in lines if "==" in line)}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_pyproject_dependencies_are_requirements_txt():
    project = _pyproject()["project"]
    assert sorted(project["dependencies"]) == sorted(_requirement_lines(ROOT / "requirements.txt"))
    dev = [line for line in _requirement_lines(ROOT / "requirements-dev.txt") if not line.startswith("setuptools")]
    assert sorted(project["optional-dependencies"]["dev"]) == sorted(dev)
    assert project["scripts"]["inside-the-llm"] == "visualizer.cli:main"
    assert project["license"] == "Apache-2.0" and (ROOT / "LICENSE").read_text().count("Apache License") >= 1


def test_page_scripts_tests_and_lint_have_exact_pins():
    pins = _pins(_requirement_lines(ROOT / "requirements.txt") + _requirement_lines(ROOT / "requirements-dev.txt"))
    for name in ("bertviz", "mpld3", "xstatic-jquery", "gradio", "plotly", "torch", "transformers", "gguf",
                 "accelerate", "playwright", "pytest", "pytest-timeout", "ruff"):
        assert name in pins, f"{name} needs an exact pin (==)"


def test_the_lock_agrees_with_the_pins_and_leaves_torch_to_its_index():
    text = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert "-c constraints.txt" in _raw_lines(ROOT / "requirements.txt")
    lock = _pins(_requirement_lines(ROOT / "constraints.txt"))
    assert all(line.count("==") == 1 for line in _requirement_lines(ROOT / "constraints.txt"))
    assert not [name for name in lock if name in ("torch", "triton", "pip") or name.startswith("nvidia-")]
    pins = _pins(_requirement_lines(ROOT / "requirements.txt") + _requirement_lines(ROOT / "requirements-dev.txt"))
    disagree = {name: (version, lock.get(name)) for name, version in pins.items()
                if name != "torch" and lock.get(name) != version}
    assert not disagree, f"requirements pin vs constraints.txt: {disagree}"
    unpinned = [_normalise(_NAME.match(line).group(1)) for line in _requirement_lines(ROOT / "requirements.txt")]
    assert not [name for name in unpinned if name != "torch" and name not in lock], "every runtime package locked"
    assert "gguf" in lock and "accelerate" in lock and text.startswith("#")


def _raw_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


def _source_copy(tmp_path: Path) -> Path:
    """What a source distribution holds, outside the checkout: the build leaves build/ and *.egg-info behind."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "visualizer", src / "visualizer", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


@pytest.mark.slow
def test_wheel_carries_the_model_configs_assets_licence_and_script(tmp_path):
    pytest.importorskip("setuptools")
    src, out = _source_copy(tmp_path), tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(src)], check=True, timeout=300, capture_output=True)
    (wheel,) = out.glob("inside_the_llm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"visualizer/bundled/model/{path.name}" for path in (ROOT / "visualizer/bundled/model").iterdir()}
    assert {"visualizer/bundled/model/model.safetensors", "visualizer/bundled/model/tokenizer.json",
            "visualizer/bundled/model/config.json"} <= expected <= names
    for folder in ("known_configs", "assets"):
        files = {f"visualizer/{folder}/{path.name}" for path in (ROOT / "visualizer" / folder).iterdir()
                 if path.is_file()}
        assert files and files <= names, folder
    assert "visualizer/__main__.py" in names and "visualizer/cli.py" in names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/"))]
    dist_info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "inside-the-llm = visualizer.cli:main" in entry_points

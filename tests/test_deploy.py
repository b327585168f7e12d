import re
import socket
from pathlib import Path

import pytest

from visualizer.config import config_from_manifest, load_manifest
from visualizer.deploy import (
    DELETE_PATTERNS,
    PLACEHOLDER_ID,
    README,
    front_matter,
    main,
    plan,
    readme_front_matter,
    resolve_space_id,
    space_files,
    space_requirements,
    space_section,
    stage,
    with_front_matter,
)

ROOT = Path(__file__).resolve().parent.parent
SPACE = "someone/inside-the-llm"


def test_readme_front_matter_agrees_with_manifest():
    manifest = load_manifest()
    assert readme_front_matter(README.read_text(encoding="utf-8")) == front_matter(manifest)


def test_front_matter_carries_the_licence():
    assert front_matter(load_manifest())["license"] == "apache-2.0"


def test_sdk_version_is_the_pinned_gradio():
    pinned = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert str(load_manifest()["space"]["sdk_version"]) == pinned


def test_manifest_app_settings_load():
    config = config_from_manifest(load_manifest())
    assert config.model == "auto" and config.queue.max_size is None and config.limits.max_new_tokens > 0
    assert config.trust_remote_code is False and config.share is False


def test_the_plan_uploads_the_screenshot_licence_and_lfs_rules_and_deletes_what_is_gone():
    steps = {step.call: step.args for step in plan(load_manifest(), SPACE)}
    files = steps["stage the upload"]["files"]
    for name in ("docs/screenshot.png", "LICENSE", ".gitattributes", "app.py", "requirements.txt",
                 "constraints.txt", "README.md", "visualizer/bundled/model/model.safetensors",
                 "visualizer/assets/app.js", "visualizer/cli.py"):
        assert name in files
    assert not [name for name in files if name.startswith(("tests/", "benchmarks/", ".ci/", ".venv/"))
                or "__pycache__" in name]
    upload = steps["HfApi.upload_folder"]
    assert upload["delete_patterns"] == DELETE_PATTERNS == ["*"] and upload["repo_id"] == SPACE
    assert upload["folder_path"] == steps["stage the upload"]["folder"] != str(ROOT)  # a copy, never the checkout


def test_gitattributes_puts_weights_and_pictures_in_lfs():
    rules = (ROOT / ".gitattributes").read_text()
    for pattern in ("*.safetensors", "*.png"):
        assert re.search(rf"^{re.escape(pattern)} filter=lfs diff=lfs merge=lfs -text$", rules, re.M)


def test_placeholder_id_is_refused_with_the_way_out():
    manifest = load_manifest()
    assert manifest["space"]["id"] == PLACEHOLDER_ID
    with pytest.raises(ValueError, match=r"placeholder 'your-hf-name/inside-the-llm': pass --space-id "
                                         r"NAME/inside-the-llm"):
        resolve_space_id(manifest)
    with pytest.raises(ValueError, match="pass --space-id ada/inside-the-llm"):
        resolve_space_id(manifest, whoami=lambda: {"name": "ada"})
    with pytest.raises(ValueError, match="must look like OWNER/NAME"):
        resolve_space_id(manifest, "no-slash")
    assert resolve_space_id(manifest, SPACE) == SPACE


def test_placeholder_refused_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--dry-run"])
    assert exit_info.value.code == 2 and "--space-id" in capsys.readouterr().err


def test_bad_space_sections_name_the_key():
    with pytest.raises(ValueError, match=r"missing space\.hardware"):
        space_section({"space": {"id": SPACE, "sdk_version": "6.31.0", "python_version": "3.12"}})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) space\.licence"):
        space_section({"space": {**load_manifest()["space"], "licence": "mit"}})


class _NoNetwork:
    def __init__(self, *args, **kwargs):
        raise AssertionError("the dry run opened a socket")


def test_dry_run_prints_the_plan_touches_no_network_and_changes_nothing(capsys, monkeypatch):
    before = README.read_text(encoding="utf-8")
    monkeypatch.setattr(socket, "socket", _NoNetwork)
    main(["--dry-run", "--space-id", SPACE])
    out = capsys.readouterr().out
    for call in ("create_repo", "upload_folder", "request_space_hardware", "sdk_version: 6.31.0",
                 "docs/screenshot.png", "delete_patterns=['*']", "license: apache-2.0"):
        assert call in out
    assert README.read_text(encoding="utf-8") == before


def test_staged_upload_has_a_generated_readme_and_the_lock_in_requirements(tmp_path):
    manifest = load_manifest()
    before = README.read_text(encoding="utf-8")
    files = stage(manifest, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == files
    staged = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert readme_front_matter(staged) == front_matter(manifest)
    assert staged.split("\n---\n", 1)[1] == before.split("\n---\n", 1)[1]  # the same body
    assert README.read_text(encoding="utf-8") == before
    assert (tmp_path / "docs/screenshot.png").read_bytes() == (ROOT / "docs/screenshot.png").read_bytes()
    requirements = (tmp_path / "requirements.txt").read_text()
    assert "-c constraints.txt" not in requirements  # a Space installs requirements.txt alone


def test_space_requirements_pin_everything_from_the_lock_and_nothing_for_the_tests():
    lines = [line for line in space_requirements().splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in lines), [line for line in lines if "==" not in line]
    names = {line.split("==")[0] for line in lines}
    assert {"torch", "gradio", "numpy", "fastapi", "mpld3", "gguf", "accelerate"} <= names
    assert not names & {"pytest", "ruff", "playwright", "pytest-timeout"}
    assert len(names) == len(lines)


def test_space_files_names_a_missing_file(tmp_path):
    (tmp_path / "app.py").write_text("")
    with pytest.raises(ValueError, match="requirements.txt is missing"):
        space_files(tmp_path)


def test_front_matter_is_replaced_not_duplicated():
    text = with_front_matter("---\ntitle: old\n---\n# Body\n", {"title": "new"})
    assert text == "---\ntitle: new\n---\n# Body\n"
    assert with_front_matter("# Body\n", {"a": 1}).startswith("---\na: 1\n---\n# Body")

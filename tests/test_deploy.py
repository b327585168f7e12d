import re
from pathlib import Path

from visualizer.config import config_from_manifest, load_manifest
from visualizer.deploy import README, front_matter, main, readme_front_matter, with_front_matter

ROOT = Path(__file__).resolve().parent.parent


def test_readme_front_matter_agrees_with_manifest():
    manifest = load_manifest()
    assert readme_front_matter(README.read_text(encoding="utf-8")) == front_matter(manifest)


def test_sdk_version_is_the_pinned_gradio():
    pinned = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert str(load_manifest()["space"]["sdk_version"]) == pinned


def test_manifest_app_settings_load():
    config = config_from_manifest(load_manifest())
    assert config.model == "auto" and config.queue.max_size > 0 and config.limits.max_new_tokens > 0
    assert config.trust_remote_code is False and config.share is False


def test_dry_run_prints_the_plan_and_changes_nothing(capsys):
    before = README.read_text(encoding="utf-8")
    main(["--dry-run"])
    out = capsys.readouterr().out
    for call in ("create_repo", "upload_folder", "request_space_hardware", "sdk_version: 6.31.0",
                 "README.md already matches"):
        assert call in out
    assert README.read_text(encoding="utf-8") == before


def test_front_matter_is_replaced_not_duplicated():
    text = with_front_matter("---\ntitle: old\n---\n# Body\n", {"title": "new"})
    assert text == "---\ntitle: new\n---\n# Body\n"
    assert with_front_matter("# Body\n", {"a": 1}).startswith("---\na: 1\n---\n# Body")

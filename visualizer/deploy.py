"""Create or update the Hugging Face Space described by `spaces.yaml`.

Hugging Face reads only README.md's YAML front matter, so this command writes that front matter from the
manifest, uploads the app's files and requests the hardware. `--dry-run` prints exactly what it would do
and needs no network and no token.

    python -m visualizer.deploy --dry-run
    HF_TOKEN=... python -m visualizer.deploy
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from visualizer.config import MANIFEST, PHI3_MINI, load_manifest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
UPLOAD = ["app.py", "requirements.txt", "spaces.yaml", "README.md", "visualizer/**"]
IGNORE = ["**/__pycache__/**", "**/*.pyc", "tests/**", "benchmarks/**", ".ci/**", ".venv/**"]
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def front_matter(manifest: dict[str, Any]) -> dict[str, Any]:
    space, app = manifest["space"], manifest.get("app", {})
    matter = {key: space[key] for key in ("title", "emoji", "colorFrom", "colorTo", "short_description")
              if key in space}
    matter.update(sdk="gradio", sdk_version=str(space["sdk_version"]),
                  python_version=str(space["python_version"]), app_file="app.py",
                  suggested_hardware=space["hardware"] if space["hardware"] != "zero-a10g" else "a10g-small")
    model = app.get("model")
    if model == "auto" and not str(space["hardware"]).startswith("cpu"):
        model = PHI3_MINI  # what "auto" resolves to on GPU hardware
    if model and model not in ("auto", "bundled"):
        matter["models"] = [model]
        matter["preload_from_hub"] = [model]  # downloaded at build time: no cold-start download
    matter["startup_duration_timeout"] = "1h"
    return matter


def readme_front_matter(text: str) -> dict[str, Any]:
    match = _FRONT.match(text)
    return yaml.safe_load(match.group(1)) if match else {}


def with_front_matter(text: str, matter: dict[str, Any]) -> str:
    block = "---\n" + yaml.safe_dump(matter, sort_keys=False, allow_unicode=True).strip() + "\n---\n"
    return _FRONT.sub(lambda _: block, text, count=1) if _FRONT.match(text) else block + text


@dataclass(frozen=True)
class Step:
    call: str
    args: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.call}(" + ", ".join(f"{k}={v!r}" for k, v in self.args.items()) + ")"


def plan(manifest: dict[str, Any]) -> list[Step]:
    space = manifest["space"]
    repo = space["id"]
    return [
        Step("write README.md front matter", {"front_matter": front_matter(manifest)}),
        Step("HfApi.create_repo", {"repo_id": repo, "repo_type": "space", "space_sdk": "gradio",
                                   "exist_ok": True}),
        Step("HfApi.upload_folder", {"repo_id": repo, "repo_type": "space", "folder_path": str(ROOT),
                                     "allow_patterns": UPLOAD, "ignore_patterns": IGNORE}),
        Step("HfApi.request_space_hardware", {"repo_id": repo, "hardware": space["hardware"]}),
    ]


def execute(steps: list[Step]) -> None:  # pragma: no cover - needs the network and a token
    from huggingface_hub import HfApi

    api = HfApi()
    for step in steps:
        print("->", step)
        if step.call == "write README.md front matter":
            README.write_text(with_front_matter(README.read_text(encoding="utf-8"), step.args["front_matter"]),
                              encoding="utf-8")
        else:
            getattr(api, step.call.split(".", 1)[1])(**step.args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m visualizer.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    steps = plan(manifest)
    if args.dry_run:
        print(f"Plan for Space {manifest['space']['id']} (dry run: nothing was changed)")
        for number, step in enumerate(steps, 1):
            print(f"{number}. {step}")
        print("\nREADME.md front matter:\n---\n" + yaml.safe_dump(front_matter(manifest), sort_keys=False,
                                                                 allow_unicode=True).strip() + "\n---")
        current = readme_front_matter(README.read_text(encoding="utf-8")) if README.exists() else {}
        print("README.md already matches." if current == front_matter(manifest)
              else "README.md differs: the real run rewrites its front matter.")
        return
    execute(steps)


if __name__ == "__main__":
    main()

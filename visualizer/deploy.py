"""Create or update the Hugging Face Space described by `spaces.yaml`.

Hugging Face reads only the Space's README.md front matter, so the upload is staged in a temporary folder: the
app's files, a README.md made of the manifest's front matter and this README's body, and a requirements.txt
with the lock written in (a Space installs requirements.txt alone, so `-c constraints.txt` cannot reach it).
The local files are never rewritten. The upload replaces the Space's files: what was removed here leaves the
Space too. `--dry-run` prints exactly what it would do and needs no network and no token.

    python -m visualizer.deploy --dry-run --space-id NAME/inside-the-llm
    HF_TOKEN=... python -m visualizer.deploy --space-id NAME/inside-the-llm
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from visualizer.config import MANIFEST, PHI3_MINI, load_manifest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PLACEHOLDER_ID = "your-hf-name/inside-the-llm"
UPLOAD = ["app.py", "requirements.txt", "constraints.txt", "spaces.yaml", "README.md", "LICENSE", ".gitattributes",
          "docs/screenshot.png", "visualizer/**/*"]
GENERATED = ("README.md", "requirements.txt")  # written into the staged folder, not copied
DELETE_PATTERNS = ["*"]  # every remote file not in this upload goes (the Hub always keeps .gitattributes)
SPACE_REQUIRED = ("id", "sdk_version", "python_version", "hardware")
SPACE_OPTIONAL = ("title", "emoji", "colorFrom", "colorTo", "short_description", "license")
_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


# ---------------------------------------------------------------- the manifest's `space` section


def space_section(manifest: dict[str, Any], source: str = "spaces.yaml") -> dict[str, Any]:
    space = manifest.get("space")
    if not isinstance(space, dict):
        raise ValueError(f"{source}: a `space` section (id, sdk_version, python_version, hardware) is needed")
    missing = [key for key in SPACE_REQUIRED if key not in space]
    unknown = sorted(str(key) for key in set(space) - set(SPACE_REQUIRED) - set(SPACE_OPTIONAL))
    if missing or unknown:
        problem = f"missing {', '.join(f'space.{k}' for k in missing)}" if missing else \
            f"unknown setting(s) {', '.join(f'space.{k}' for k in unknown)}"
        raise ValueError(f"{source}: {problem}; known: {', '.join(SPACE_REQUIRED + SPACE_OPTIONAL)}")
    bad = [key for key, value in space.items() if not isinstance(value, str | int | float) or isinstance(value, bool)]
    if bad:
        raise ValueError(f"{source}: space.{bad[0]} must be a string, got {space[bad[0]]!r}")
    return space


def resolve_space_id(manifest: dict[str, Any], space_id: str | None = None, whoami=None) -> str:
    """--space-id, else the manifest's id; the shipped placeholder is refused (whoami names the account)."""
    chosen = space_id or str(space_section(manifest)["id"])
    if chosen == PLACEHOLDER_ID:
        owner = "NAME"
        if whoami is not None:
            try:
                owner = whoami()["name"]
            except Exception:  # noqa: BLE001 - no token or no network: the generic hint still helps
                pass
        raise ValueError(f"space.id is the placeholder {PLACEHOLDER_ID!r}: pass --space-id "
                         f"{owner}/inside-the-llm, or set space.id in spaces.yaml")
    if not _REPO_ID.match(chosen):
        raise ValueError(f"space id must look like OWNER/NAME, got {chosen!r}")
    return chosen


# ---------------------------------------------------------------- what the Space gets


def front_matter(manifest: dict[str, Any]) -> dict[str, Any]:
    space, app = space_section(manifest), manifest.get("app") or {}
    matter = {key: space[key] for key in ("title", "emoji", "colorFrom", "colorTo", "short_description", "license")
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


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    return _normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line).group(0))


def _lock(root: Path) -> dict[str, str]:
    lines = (root / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.split("#", 1)[0].strip() for line in lines]
    return {_normalise(pin.split("==")[0]): pin.split("==")[1] for pin in pins if "==" in pin}


def _installed_closure(names: list[str]) -> set[str]:
    """The packages these bring in, read from the installed packages' metadata (this environment's markers)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = _normalise(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            raise ValueError(f"{name} is not installed here: install requirements.txt before deploying (the "
                             "Space's lock is read from the installed packages)") from None
        for raw in requires:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def space_requirements(root: Path = ROOT) -> str:
    """requirements.txt for the Space: the same packages, each one and all it brings in pinned from the lock."""
    lock = _lock(root)
    out, names = [], []
    for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines():
        bare = line.split("#", 1)[0].strip()
        if bare.startswith("-c"):
            continue
        if bare and not bare.startswith("-"):
            name = _requirement_name(bare)
            names.append(name)
            if "==" not in bare and name in lock:
                line = f"{name}=={lock[name]}"
        out.append(line)
    brought_in = sorted(_installed_closure(names) - set(names))
    out += ["# From constraints.txt: what the packages above bring in (a Space installs this file alone)"]
    out += [f"{name}=={lock[name]}" for name in brought_in if name in lock]
    return "\n".join(out) + "\n"


def space_files(root: Path = ROOT) -> list[str]:
    """The files the Space gets, relative to the repository, sorted; a named file that is missing is an error."""
    files: set[str] = set()
    for pattern in UPLOAD:
        if "*" not in pattern:
            if not (root / pattern).is_file():
                raise ValueError(f"{pattern} is missing: the Space needs it (visualizer/deploy.py UPLOAD)")
            files.add(pattern)
            continue
        for path in root.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(path.relative_to(root).as_posix())
    return sorted(files)


def stage(manifest: dict[str, Any], folder: Path, root: Path = ROOT) -> list[str]:
    """Writes the Space's files into `folder` (the generated ones freshly made); returns their paths."""
    files = space_files(root)
    for name in files:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name not in GENERATED:
            shutil.copy2(root / name, target)
    readme = (root / "README.md").read_text(encoding="utf-8")
    (folder / "README.md").write_text(with_front_matter(readme, front_matter(manifest)), encoding="utf-8")
    (folder / "requirements.txt").write_text(space_requirements(root), encoding="utf-8")
    return files


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Step:
    call: str
    args: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.call}(" + ", ".join(f"{k}={v!r}" for k, v in self.args.items()) + ")"


def plan(manifest: dict[str, Any], space_id: str, folder: str = "<staged copy>", root: Path = ROOT) -> list[Step]:
    space = space_section(manifest)
    return [
        Step("stage the upload", {"folder": folder, "files": space_files(root), "generated": list(GENERATED)}),
        Step("HfApi.create_repo", {"repo_id": space_id, "repo_type": "space", "space_sdk": "gradio",
                                   "exist_ok": True}),
        Step("HfApi.upload_folder", {"repo_id": space_id, "repo_type": "space", "folder_path": folder,
                                     "delete_patterns": DELETE_PATTERNS,
                                     "commit_message": "Deploy Inside the LLM (python -m visualizer.deploy)"}),
        Step("HfApi.request_space_hardware", {"repo_id": space_id, "hardware": space["hardware"]}),
    ]


def execute(manifest: dict[str, Any], space_id: str) -> None:  # pragma: no cover - needs the network and a token
    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="itl-space-") as folder:
        for step in plan(manifest, space_id, folder):
            print("->", step)
            if step.call == "stage the upload":
                stage(manifest, Path(folder))
            else:
                getattr(api, step.call.split(".", 1)[1])(**step.args)


def print_dry_run(manifest: dict[str, Any], space_id: str) -> None:
    print(f"Plan for Space {space_id} (dry run: nothing was changed)")
    for number, step in enumerate(plan(manifest, space_id), 1):
        print(f"{number}. {step}")
    matter = front_matter(manifest)
    print("\nThe Space's README.md front matter:\n---\n"
          + yaml.safe_dump(matter, sort_keys=False, allow_unicode=True).strip() + "\n---")
    current = readme_front_matter(README.read_text(encoding="utf-8")) if README.exists() else {}
    print("README.md already matches." if current == matter
          else "README.md's front matter differs (the Space gets the one above; copy it into README.md).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m visualizer.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--space-id", help=f"OWNER/NAME of the Space (default: spaces.yaml space.id, which must "
                        f"not be the placeholder {PLACEHOLDER_ID})")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; no network, no files written")
    args = parser.parse_args(argv)
    try:
        manifest = load_manifest(args.manifest, required=True)
        whoami = None if args.dry_run else _whoami
        space_id = resolve_space_id(manifest, args.space_id, whoami)
        space_files()  # every named file is there before anything is sent
    except ValueError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.dry_run:
        print_dry_run(manifest, space_id)
        return
    execute(manifest, space_id)  # pragma: no cover


def _whoami() -> dict:  # pragma: no cover - network
    from huggingface_hub import whoami

    return whoami()


if __name__ == "__main__":
    main()

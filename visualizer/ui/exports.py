"""Download buttons: a tab's numbers (CSV or JSON) and bertviz pages written to temporary files on demand.

A visible button runs the handler, which writes the file into a hidden gr.DownloadButton; the page then clicks
that button, so one click downloads a file made from what is on screen now.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import gradio as gr

_DIR: Path | None = None
CLICK_JS = "() => { setTimeout(() => window.itlClickDownload && window.itlClickDownload('{ID}'), 50); }"


def _directory() -> Path:
    """One private temp directory per server (under the system temp dir, which Gradio may serve from)."""
    global _DIR
    if _DIR is None or not _DIR.is_dir():
        _DIR = Path(tempfile.mkdtemp(prefix="itl-export-"))
    return _DIR


def write_download(stem: str, suffix: str, text: str) -> str:
    """Write `text` to a new file named after `stem` (made filename-safe) and return its path."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "export"
    folder = Path(tempfile.mkdtemp(dir=_directory()))  # one folder per file: the name stays readable
    path = folder / f"{safe}{suffix}"
    path.write_text(text, encoding="utf-8")
    return str(path)


def download_control(label: str, elem_id: str) -> tuple[gr.Button, gr.DownloadButton]:
    """A visible button and the hidden download button it fills."""
    button = gr.Button(label, size="sm", elem_id=elem_id, elem_classes=["itl-export"])
    target = gr.DownloadButton(elem_id=f"{elem_id}-file", elem_classes=["itl-hidden"])
    return button, target


def wire_download(button: gr.Button, target: gr.DownloadButton, fn: Callable, inputs: list, **options) -> None:
    """Click -> fn writes the file -> the page clicks the hidden download button."""
    button.click(fn, inputs, target, api_visibility="private", **options).then(
        None, None, None, js=CLICK_JS.replace("{ID}", str(target.elem_id)), queue=False)

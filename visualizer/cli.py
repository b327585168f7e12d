"""The app's command line, shared by `python app.py` (the Space's entry point), `python -m visualizer` and the
`inside-the-llm` console script.

Start-up fails in one of a few known ways (a bad setting, a device that is not there, a model that does not
load); each one prints a single line and a hint on stderr and exits with status 2. `--debug` adds the traceback.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import NoReturn

from visualizer import gpu  # (first: on ZeroGPU, `spaces` must be imported before CUDA starts)
from visualizer.config import (
    DEFAULT_PROMPT,
    AppConfig,
    build_parser,
    config_from_namespace,
    on_space,
    resolve_host,
    resolve_port,
)

EXIT_STARTUP_ERROR = 2  # the same status argparse uses for a bad flag
DEBUG_HINT = "--debug shows the traceback"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__  # transformers' messages span many lines
    return text if len(text) <= 300 else text[:297] + "..."


def fail(prog: str, error: BaseException, hint: str, debug: bool) -> NoReturn:
    """One line and a hint on stderr, exit status 2; the traceback first with --debug."""
    if debug:
        traceback.print_exception(error)
    print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
    print(f"hint: {hint}" + ("" if debug else f" ({DEBUG_HINT})"), file=sys.stderr)
    raise SystemExit(EXIT_STARTUP_ERROR)


def _model_hint(config: AppConfig) -> str:
    if not config.allow_fallback:
        return ("check the hub id or local folder (and the network or the Hugging Face cache), or drop "
                "--no-fallback to show the bundled model instead")
    return "check the model files; --model bundled always works offline"


def _missing_folder(model: str) -> bool:
    """A path the user clearly meant as a folder (hub ids never start with these) that is not there."""
    return model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().exists()


def load(config: AppConfig, prog: str):
    """The one model session, or a clean exit saying what to change."""
    from visualizer.loading import resolve_device  # torch: imported only once the flags are known good

    try:
        resolve_device(config.device)
    except ValueError as error:
        fail(prog, error, "use --device auto (whatever this machine has) or --device cpu", config.debug)
    if not config.allow_fallback and _missing_folder(config.model):
        fail(prog, ValueError(f"--model {config.model}: no such folder"), _model_hint(config), config.debug)
    from visualizer.session import load_session

    try:
        return load_session(config)
    except Exception as error:  # noqa: BLE001 - any loading failure ends start-up the same way
        fail(prog, error, _model_hint(config), config.debug)


def launch(demo, config: AppConfig, prog: str) -> None:
    """Gradio's launch (serving from its own threads), with our own start-up lines: its quiet mode drops the "set
    share=True" advice."""
    from visualizer.ui import launch_options

    try:
        demo.launch(server_name=resolve_host(config), server_port=resolve_port(config), share=config.share,
                    quiet=True, prevent_thread_lock=True, **launch_options())
    except (OSError, ValueError) as error:
        fail(prog, error, "choose another --port (or free this one), or check --host", config.debug)
    print(f"* Running on local URL:  {demo.local_url}", flush=True)
    if config.share and not demo.share_url:
        print("* No public link could be created (see above); the app is still served locally.", flush=True)
    elif not config.share and not on_space():
        print(f"* To create a temporary public link, start again with --share: {prog} --share", flush=True)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    # Start-up creates ~600,000 long-lived objects (torch, transformers, gradio, the model's modules) and Python's
    # cycle collector rescanned them about 2,000 times on the way: 1.5 s of a 7.7 s start on SmolLM2. It is off
    # until the server listens; then everything alive is frozen out of later collections (which also keeps them
    # from pausing requests), and it runs again for what serving allocates. The cycles start-up left behind
    # (about 25,000 objects, a few MB) are frozen with them: collecting them first would take 0.5 s.
    gc.disable()
    try:
        demo = start(argv, prog)
    finally:
        gc.freeze()
        gc.enable()
    demo.block_thread()


def start(argv: list[str] | None, prog: str | None):
    """Parse the flags, load the model, build the page and start serving it; the launched demo."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        config = config_from_namespace(args)
    except ValueError as error:
        fail(prog, error, "fix that value in the manifest or on the command line (see --help)", bool(args.debug))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.debug:
        logging.getLogger("visualizer").setLevel(logging.DEBUG)
    # Gradio wraps every request in a switch to matplotlib's "agg" backend; with none named, matplotlib imports
    # pyplot to find the default one, and the first visitor waited 0.25 s for it. This app draws no matplotlib.
    os.environ.setdefault("MPLBACKEND", "agg")
    session = load(config, prog)
    if not gpu.ZERO_GPU:  # there GPU time is a visitor's quota, spent only inside their requests
        # the page's opening prompt, computed while gradio is imported and the page is built (its tensor work
        # overlaps that Python work); the first visitor's Next-token view then finds it cached
        threading.Thread(target=_warm_up, args=(session,), name="warm-up", daemon=True).start()
    from visualizer.ui import build_demo

    demo = build_demo(session)
    launch(demo, config, prog)
    return demo


def _warm_up(session) -> None:
    try:
        session.warm_up(DEFAULT_PROMPT)
    except Exception:  # noqa: BLE001 - a failed warm-up costs the first visitor a forward pass, nothing more
        logging.getLogger(__name__).warning("warming up the default prompt failed", exc_info=True)


if __name__ == "__main__":
    main()

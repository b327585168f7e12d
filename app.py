"""Inside the LLM: `python app.py --help`. Builds the settings, loads the one model, serves the page."""

import logging  # noqa: E402

from visualizer import gpu  # noqa: F401  (first: on ZeroGPU, `spaces` must be imported before CUDA starts)
from visualizer.config import config_from_args, resolve_host, resolve_port  # noqa: E402
from visualizer.session import load_session  # noqa: E402
from visualizer.ui import build_demo, launch_options  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(argv)
    session = load_session(config)
    demo = build_demo(session)
    demo.launch(server_name=resolve_host(config), server_port=resolve_port(config), share=config.share,
                **launch_options())


if __name__ == "__main__":
    main()

"""`python -m visualizer`: the app, with the same flags as `python app.py` and `inside-the-llm`."""

from visualizer.cli import main

if __name__ == "__main__":
    main(prog="python -m visualizer")

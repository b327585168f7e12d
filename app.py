"""Inside the LLM: `python app.py --help`. The Hugging Face Space's entry point; the work is in visualizer.cli."""

from visualizer.cli import main

if __name__ == "__main__":
    main(prog="python app.py")

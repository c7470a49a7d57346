"""``python -m safeload``: the command line of :mod:`safeload.cli`."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="safeload")

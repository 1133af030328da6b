"""Execute the tutorial notebooks (CI runs this); ``--write`` stores the outputs in them (for the site).

Usage: ``python docs/run_notebooks.py [--write] [NOTEBOOK ...]``. Each notebook runs in its own
kernel with docs/tutorials/ as the working directory; a failing cell fails the run (exit 1) and
names the notebook. The time each took is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

TUTORIALS = Path(__file__).resolve().parent / "tutorials"


def execute(path: Path, write: bool, timeout: int) -> float:
    """Run every cell of ``path``; returns the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    t0 = time.monotonic()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.monotonic() - t0
    if write:
        nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Execute the named notebooks (default: all of docs/tutorials/)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--write", action="store_true", help="store the outputs in the notebooks")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(TUTORIALS.glob("*.ipynb"))
    for path in paths:
        try:
            seconds = execute(path.resolve(), args.write, args.timeout)
        except CellExecutionError as exc:
            print(f"{path.name}: FAILED\n{str(exc)[-3000:]}", file=sys.stderr)
            return 1
        print(f"{path.name}: ok in {seconds:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

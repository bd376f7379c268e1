"""Run one notebook top to bottom in a Jupyter kernel, as "Run All" does, and write the executed copy to OUT_DIR.

The cells that call `nbdev_export()` are left out: they rewrite quantnb/*.py, and `make test` runs notebooks side by
side, so a notebook importing quantnb while another one exports could read a half-written module. `make test` checks
that the library matches the notebooks before it runs them (`make check-export`).
Usage: python tools/run_notebook.py NOTEBOOK OUT_DIR
"""
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXPORT_CALL = re.compile(r"\bnbdev_export\(")


def without_export_cells(nb):
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and EXPORT_CALL.search(c.source))]
    return nb


def main(notebook: str, out_dir: str) -> None:
    path = Path(notebook)
    nb = without_export_cells(nbformat.read(path, as_version=4))
    try:
        NotebookClient(nb, resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        nbformat.write(nb, Path(out_dir) / path.name)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[-1])
    main(*sys.argv[1:])

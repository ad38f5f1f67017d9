"""Run a chapter's fast cells (everything nbdev_test runs: not `slow`, not `gpu`) and save their outputs in the notebook,
so a reader (and the docs site) sees its tables and figures without running it. Run `nbdev_clean` afterwards.

    python tools/run_nb.py nbs/02_mixer.ipynb [nbs/03_mae.ipynb ...]
"""
import re, sys, time
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

SKIP = {'slow', 'gpu'}


def flags(src:str) -> set:
    "The nbdev directives of a cell's source (`#| slow` -> {'slow'})."
    return {m.group(1) for m in re.finditer(r'^#\|\s*([\w-]+)', src, re.M)}


def run(fn):
    fn = Path(fn).resolve()
    nb = read_nb(fn)
    def skip(cell):
        if cell.cell_type != 'code': return True
        if 'nbdev_export(' in cell.source: return True
        return bool(SKIP & flags(cell.source))
    t = time.perf_counter()
    k = CaptureShell(fn)
    with working_directory(fn.parent): k.run_all(nb, exc_stop=True, preproc=skip)
    for c in nb.cells:                                   # skipped cells keep no stale outputs
        if c.cell_type == 'code' and skip(c): c.outputs = []
    write_nb(nb, fn)
    size = fn.stat().st_size
    print(f"{fn.name}: ran in {time.perf_counter() - t:.0f} s, {size / 1e3:.0f} KB with outputs")


if __name__ == '__main__':
    for f in sys.argv[1:]: run(f)

"""The package's layering: a chapter imports only modules of earlier chapters (nbs/ in file-name order).

Two checks: the exported modules (cmmixer/*.py, lazy imports inside functions included) never import a later
chapter's module; and every cell of a chapter, tests and experiment cells included, imports only earlier chapters'
modules, except the exceptions listed in `KNOWN` with their reason. An exception that disappears must leave the
list too, so the list always says where the layering stands.
"""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = re.compile(r'^\s*(?:from|import)\s+cmmixer\.(\w+)', re.M)

# chapter -> later modules it still imports, and why (the tables-layer issue moves these experiment cells)
KNOWN = {
    '03_mae.ipynb': ({'experiment', 'pretrain'}, "its papermill cells run pre-training through the experiment layer"),
    '04_retrieval.ipynb': ({'experiment'}, "Table 1's papermill entry runs through the experiment layer"),
}


def chapters():
    "[(notebook, module, source of every cell)] in nbs/ order, for the chapters that export a module."
    out = []
    for p in sorted((ROOT / 'nbs').glob('*.ipynb')):
        cells = [''.join(c['source']) for c in json.loads(p.read_text())['cells']]
        exp = [m.group(1) for c in cells for m in [re.search(r'#\|\s*default_exp\s+(\S+)', c)] if m]
        if exp: out.append((p.name, exp[0], '\n'.join(cells)))
    return out


def later_imports(src, module, order):
    "The modules of later chapters that `src` imports."
    return {m for m in IMPORT.findall(src) if m in order and order[m] > order[module]}


def test_modules_import_only_earlier_chapters():
    order = {mod: i for i, (_, mod, _) in enumerate(chapters())}
    bad = {m: later_imports((ROOT / 'cmmixer' / f'{m}.py').read_text(), m, order) for m in order}
    assert not {m: b for m, b in bad.items() if b}, bad


def test_chapters_import_only_earlier_chapters():
    chs = chapters()
    order = {mod: i for i, (_, mod, _) in enumerate(chs)}
    found = {nb: later_imports(src, mod, order) for nb, mod, src in chs}
    new = {nb: b - KNOWN.get(nb, (set(), ''))[0] for nb, b in found.items()}
    assert not {nb: b for nb, b in new.items() if b}, f"chapters importing later chapters' modules: {new}"
    gone = {nb: k - found.get(nb, set()) for nb, (k, _) in KNOWN.items()}
    assert not {nb: g for nb, g in gone.items() if g}, f"fixed: remove from KNOWN {gone}"


def test_layering_catches_an_upward_import():
    order = {'core': 0, 'media': 1, 'mae': 2}
    assert later_imports("import numpy\nfrom cmmixer.mae import CMMixerMAE\n", 'media', order) == {'mae'}
    assert later_imports("def f():\n    from cmmixer.core import check\n", 'media', order) == set()
    assert later_imports("def f():\n    import cmmixer.mae as m\n", 'core', order) == {'mae'}

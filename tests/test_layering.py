"""The package's layering: a chapter imports only modules of earlier chapters (nbs/ in file-name order).

Two checks: the exported modules (cmmixer/**/*.py, relative and lazy imports inside functions included) never import a
later chapter's module; and every cell of a chapter, tests and experiment cells included, imports only earlier chapters'
modules, except the exceptions listed in `KNOWN` with their reason. An exception that disappears must leave the
list too, so the list always says where the layering stands. Imports are read from the syntax tree, so
`from .core import x`, `from cmmixer import pretrain as pt` and `from cmmixer.tables import table1` all count.
"""
import ast, json, re, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# chapter -> later modules it still imports, and why (empty: every chapter imports only earlier ones)
KNOWN = {}


def chapters():
    "[(notebook, module, source of every cell)] in nbs/ order, for the chapters that export a module."
    out = []
    for p in sorted((ROOT / 'nbs').glob('*.ipynb')):
        cells = [''.join(c['source']) for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code']
        exp = [m.group(1) for c in cells for m in [re.search(r'#\|\s*default_exp\s+(\S+)', c)] if m]
        if exp: out.append((p.name, exp[0], cells))
    return out


def imports(src, package='cmmixer', known=()):
    "The cmmixer modules (dotted, without 'cmmixer.') that `src` imports, read from its syntax tree."
    src = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')                             # invalid escapes in a docstring are not ours to judge
            tree = ast.parse(src)
    except SyntaxError: return set()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name[len('cmmixer.'):] for a in node.names if a.name.startswith('cmmixer.')}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split('.')
            base = parts[:len(parts) - node.level + 1] if node.level else []
            full = '.'.join(base + ([node.module] if node.module else []))
            if full != 'cmmixer' and not full.startswith('cmmixer.'): continue
            rel = full[len('cmmixer.'):] if full != 'cmmixer' else ''
            for a in node.names:
                sub = f"{rel}.{a.name}" if rel else a.name
                out.add(sub if sub in known else rel)
    return out - {''}


def later_imports(src, module, order, package='cmmixer'):
    "The modules of later chapters that `src` imports."
    return {m for m in imports(src, package, order) if m in order and order[m] > order[module]}


def test_modules_import_only_earlier_chapters():
    order = {mod: i for i, (_, mod, _) in enumerate(chapters())}
    bad = {}
    for m in order:
        path = ROOT / 'cmmixer' / (m.replace('.', '/') + '.py')
        package = 'cmmixer.' + m.rpartition('.')[0] if '.' in m else 'cmmixer'
        bad[m] = later_imports(path.read_text(), m, order, package)
    assert not {m: b for m, b in bad.items() if b}, bad


def test_chapters_import_only_earlier_chapters():
    chs = chapters()
    order = {mod: i for i, (_, mod, _) in enumerate(chs)}
    found = {nb: set().union(*(later_imports(c, mod, order) for c in cells)) for nb, mod, cells in chs}
    new = {nb: b - KNOWN.get(nb, (set(), ''))[0] for nb, b in found.items()}
    assert not {nb: b for nb, b in new.items() if b}, f"chapters importing later chapters' modules: {new}"
    gone = {nb: k - found.get(nb, set()) for nb, (k, _) in KNOWN.items()}
    assert not {nb: g for nb, g in gone.items() if g}, f"fixed: remove from KNOWN {gone}"


def test_layering_catches_an_upward_import():
    order = {'core': 0, 'media': 1, 'mae': 2, 'tables.core': 3, 'tables.table1': 4}
    assert later_imports("import numpy\nfrom cmmixer.mae import CMMixerMAE\n", 'media', order) == {'mae'}
    assert later_imports("def f():\n    from cmmixer.core import check\n", 'media', order) == set()
    assert later_imports("def f():\n    import cmmixer.mae as m\n", 'core', order) == {'mae'}
    assert later_imports("from .mae import CMMixerMAE\n", 'media', order) == {'mae'}               # relative, as exported
    assert later_imports("def f():\n    from cmmixer import mae as m\n", 'core', order) == {'mae'}
    assert later_imports("from ..mae import x\nfrom .table1 import y\n", 'tables.core', order, 'cmmixer.tables') == {'tables.table1'}
    assert later_imports("from cmmixer.tables import table1\n", 'tables.core', order) == {'tables.table1'}
    assert later_imports("%time x = 1\nfrom cmmixer.mae import y\n", 'media', order) == {'mae'}

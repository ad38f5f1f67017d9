"""A papermill notebook's later cells must not rebind a parameter to something else: a test loop named `method`
once turned `-p method all` into a one-row run with no error. Rebinding a parameter as a function of itself
(`runs = project_path(runs)`) is the one allowed form; names inside functions and classes are their own scope."""
import ast, json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / 'nbs').glob('*.ipynb')
                   if any('parameters' in c['metadata'].get('tags', []) for c in json.loads(p.read_text())['cells']))


def _module_level_stores(tree):
    "(name, statement) of every name bound at module level, descending into loops/ifs/with/try, not defs or classes."
    def walk(stmts):
        for s in stmts:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)): continue
            for n in ast.walk(s) if not hasattr(s, 'body') else [getattr(s, 'target', None), *getattr(s, 'targets', []),
                                                                    *[i.optional_vars for i in getattr(s, 'items', [])]]:
                if n is None: continue
                for m in ast.walk(n):
                    if isinstance(m, ast.Name) and isinstance(m.ctx, ast.Store): yield m.id, s
            for field in ('body', 'orelse', 'finalbody'): yield from walk(getattr(s, field, []) or [])
            for h in getattr(s, 'handlers', []): yield from walk(h.body)
    yield from walk(tree.body)


def _self_rebinding(name, stmt):
    "x = f(..x..): the parameter normalised from its own value."
    value = getattr(stmt, 'value', None)
    return isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and value is not None and \
        any(isinstance(m, ast.Name) and m.id == name and isinstance(m.ctx, ast.Load) for m in ast.walk(value))


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_not_rebound(nb):
    cells, params, bad = json.loads(nb.read_text())['cells'], None, []
    for i, c in enumerate(cells):
        if c['cell_type'] != 'code': continue
        src = '\n'.join(l for l in ''.join(c['source']).split('\n') if not l.lstrip().startswith(('%', '!')))
        tree = ast.parse(src)
        if 'parameters' in c['metadata'].get('tags', []):
            params = {t.id for s in tree.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)}
            continue
        if params is None: continue
        bad += [f'cell {i}: {name!r} in {ast.unparse(stmt).splitlines()[0][:80]}' for name, stmt in _module_level_stores(tree)
                if name in params and not _self_rebinding(name, stmt)]
    assert params, f'{nb.name}: no parameters cell'
    assert not bad, f'{nb.name} rebinds papermill parameters: {bad}'


def test_the_check_catches_a_loop_variable():
    tree = ast.parse("for method, cfg in pairs:\n    test(method)\nruns = project_path(runs)\ndef f(method): method = 1")
    names = [n for n, s in _module_level_stores(tree)]
    assert names.count('method') == 1 and 'cfg' in names                   # the loop's, not the function's
    stmt = [s for n, s in _module_level_stores(tree) if n == 'runs'][0]
    assert _self_rebinding('runs', stmt) and not _self_rebinding('method', tree.body[0])

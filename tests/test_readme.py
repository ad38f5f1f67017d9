"""tools/readme.py: the README's tables are the results/ CSVs, laid out for reading."""
import csv, importlib.util
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('readme', ROOT / 'tools' / 'readme.py')
readme = importlib.util.module_from_spec(spec); spec.loader.exec_module(readme)

METRICS = [f'{d}_{m}' for d in ('v2m', 'm2v') for m in ('R@1', 'R@5', 'R@10', 'MedR')]


def _table2_csv(path):
    head = ['method', 'seeds'] + [f'{m}_{s}' for m in METRICS for s in ('mean', 'std')] + \
           ['N_v2m', 'N_m2v', 'v2m_R@1_paper', 'lr_scale', 'kind']
    rows = [dict(method='MVPt', seeds=3, lr_scale=0.5, kind='method', **{'v2m_R@1_paper': 6.22}),
            dict(method='single-modality MAEs (ablation)', seeds=3, lr_scale=2, kind='method', **{'v2m_R@1_paper': ''}),
            dict(method='oracle', seeds=0, lr_scale='', kind='reference', **{'v2m_R@1_paper': ''})]
    for i, r in enumerate(rows):
        r.update({f'{m}_mean': 10.0 + i for m in METRICS}, **{f'{m}_std': 0.25 * (r['seeds'] > 0) for m in METRICS})
        r.update(N_v2m=714, N_m2v=1200)
    with path.open('w', newline='') as f:
        w = csv.DictWriter(f, head); w.writeheader(); w.writerows(rows)


def test_table2_markdown_shows_mean_std_choice_and_paper(tmp_path):
    _table2_csv(tmp_path / 't2.csv')
    lines = readme.table2_markdown(tmp_path / 't2.csv').split('\n')
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    assert head[:4] == ['row', 'lr ×', 'seeds', 'V→M MedR ↓'] and head[-1] == "paper's R@1" and len(head) == 12
    mvpt, abl, oracle = ([c.strip() for c in l.strip('|').split('|')] for l in lines[2:5])
    assert mvpt[:5] == ['MVPt', '0.5', '3', '10.0 ± 0.2', '10.00 ± 0.25'] and mvpt[-1] == '6.22'
    assert abl[1] == '2' and abl[-1] == 'not in the paper'                 # a row the paper does not have says so
    assert oracle[1:4] == ['', '', '12.0'] and '±' not in ''.join(oracle) and oracle[-1] == ''   # a reference: one value
    assert 'N = 714 tracks' in lines[-1]


def test_every_directive_points_at_a_committed_csv():
    import json
    nb = json.loads((ROOT / 'nbs' / 'index.ipynb').read_text())
    directives = [l for c in nb['cells'] if c['cell_type'] == 'code' for l in ''.join(c['source']).split('\n')
                  if l.startswith('#| readme_')]
    assert any(d.startswith('#| readme_table2 ') for d in directives)
    for d in directives:
        assert readme.directive_table([d]) is not None, d                   # a known kind, and the file exists
    with pytest.raises(SystemExit, match='does not exist'):
        readme.directive_table(['#| readme_table2 results/no_such_table.csv'])

"""tools/readme.py: the README's tables are the results/ CSVs, laid out for reading."""
import csv, importlib.util, json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('readme', ROOT / 'tools' / 'readme.py')
readme = importlib.util.module_from_spec(spec); spec.loader.exec_module(readme)

METRICS = [f'{d}_{m}' for d in ('v2m', 'm2v') for m in ('R@1', 'R@5', 'R@10', 'MedR')]


def _table2_csv(path):
    head = ['method', 'seeds'] + [f'{m}_{s}' for m in METRICS for s in ('mean', 'std')] + \
           ['N_v2m', 'N_m2v', 'v2m_R@1_paper', 'lr_scale', 'kind', 'inputs']
    rows = [dict(method='MVPt', seeds=3, lr_scale=0.5, kind='method', inputs='fullres', **{'v2m_R@1_paper': 6.22}),
            dict(method='single-modality MAEs (ablation)', seeds=3, lr_scale=2, kind='method', inputs='pixels',
                 **{'v2m_R@1_paper': ''}),
            dict(method='oracle', seeds=0, lr_scale='', kind='reference', inputs='', **{'v2m_R@1_paper': ''})]
    for i, r in enumerate(rows):
        r.update({f'{m}_mean': 10.0 + i for m in METRICS}, **{f'{m}_std': 0.25 * (r['seeds'] > 0) for m in METRICS})
        r.update(N_v2m=714, N_m2v=1200)
    with path.open('w', newline='') as f:
        w = csv.DictWriter(f, head); w.writeheader(); w.writerows(rows)


def test_table2_markdown_shows_mean_std_choice_and_paper(tmp_path):
    _table2_csv(tmp_path / 't2.csv')
    lines = readme.table2_markdown(tmp_path / 't2.csv').split('\n')
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    assert head[:5] == ['row', 'inputs', 'lr ×', 'seeds', 'V→M MedR ↓'] and head[-1] == "paper's R@1" and len(head) == 13
    mvpt, abl, oracle = ([c.strip() for c in l.strip('|').split('|')] for l in lines[2:5])
    assert mvpt[:6] == ['MVPt', 'full-res. hand-crafted', '0.5', '3', '10.0 ± 0.2', '10.00 ± 0.25'] and mvpt[-1] == '6.22'
    assert abl[1:3] == ['pixels', '2'] and abl[-1] == 'not in the paper'   # a row the paper does not have says so
    assert oracle[1:5] == ['', '', '', '12.0'] and '±' not in ''.join(oracle) and oracle[-1] == ''   # a reference: one value
    assert 'N = 714 tracks' in lines[-1]


def test_every_directive_points_at_a_committed_csv():
    nb = json.loads((ROOT / 'nbs' / 'index.ipynb').read_text())
    directives = [l for c in nb['cells'] if c['cell_type'] == 'code' for l in ''.join(c['source']).split('\n')
                  if l.startswith('#| readme_')]
    assert any(d.startswith('#| readme_table2 ') for d in directives)
    for d in directives:
        if readme.is_markdown_cell([d]): continue                           # a reading, made by its code
        assert readme.directive_table([d]) is not None, d                   # a known kind, and the file exists
    with pytest.raises(SystemExit, match='does not exist'):
        readme.directive_table(['#| readme_table2 results/no_such_table.csv'])


def test_table6_markdown_keeps_the_papers_rows_and_measures_ours(tmp_path):
    p = tmp_path / 't6.csv'
    p.write_text('model,pt_data,scale,source,config,pt_videos,pt_epochs,finetune_pairs,pt_steps,cmmixer_v2m,cmmixer_m2v,'
                 'random_v2m,random_m2v,chance_v2m,chance_m2v,ratio_v2m,ratio_m2v\n'
                 'AST,AS+LS,55.0,paper,,,,,,,,,,,,,\n'
                 'ours,"SynthM2M, 1,200 videos",1.0,ours (val split),smoke,839.0,8.0,839.0,832.0,16.0,21.0,14.0,15.0,34.0,43.0,1.143,1.4\n')
    lines = readme.table6_markdown(p).split('\n')
    paper, ours = ([c.strip() for c in l.strip('|').split('|')] for l in lines[2:4])
    assert paper[:4] == ['AST', 'AS+LS', '55', 'paper'] and paper[4:] == [''] * 5     # the paper gives no retrieval number
    assert ours[4] == '839 videos × 8 epochs (832 steps; smoke)' and ours[6:] == ['16 / 14 / 34', '21 / 15 / 43', '1.14, 1.4']


def _nb(path, cells):
    "A notebook of (cell_type, source) pairs."
    nb = dict(cells=[dict(cell_type=t, source=src, metadata={}, **({'outputs': [], 'execution_count': None}
                                                                     if t == 'code' else {})) for t, src in cells],
              metadata={}, nbformat=4, nbformat_minor=5)
    path.write_text(json.dumps(nb))
    return path


def test_readme_md_cell_renders_its_markdown(tmp_path):
    nb = _nb(tmp_path / 'index.ipynb', [
        ('markdown', '# Title'),
        ('code', '#| hide\nfrom IPython.display import Markdown\nN = 41'),
        ('code', '#| readme_md\nfrom pathlib import Path\nhere = Path("settings.ini").is_file()\n'
                 'Markdown(f"N is **{N + 1}**, run in the root: {here}")'),
        ('code', '#| readme_md\n" ".join(["a", "plain", "str"])'),
        ('code', 'print("shown as code")')])
    readme.main(nb, tmp_path / 'README.md')
    parts = (tmp_path / 'README.md').read_text().split('\n\n')
    assert parts[1:] == ['# Title', 'N is **42**, run in the root: True', 'a plain str',
                         '```python\nprint("shown as code")\n```\n']      # the hidden cell ran first, and is left out
    with pytest.raises(SystemExit, match='must end with an expression'):
        readme.run_markdown('x = 1')
    with pytest.raises(SystemExit, match='gave int, not Markdown'):
        readme.run_markdown('1 + 1')


def test_readme_is_what_the_index_renders_now(tmp_path):
    "README.md equals tools/readme.py's rendering of nbs/index.ipynb (also `make sync-check`, which git-diffs it)."
    readme.main(ROOT / 'nbs' / 'index.ipynb', tmp_path / 'README.md')
    assert (tmp_path / 'README.md').read_text() == (ROOT / 'README.md').read_text(), 'README.md is stale: make readme'

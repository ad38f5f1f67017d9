"""The data-scale study (chapters 07b_data_scale and 09k_data_scale) at a tiny size: its three pre-training sets are
nested, hold the videos they should and none of the pools' (compared on the prepared arrays themselves); paired runs
share their pair subset and batch order; and, in the slow tier, `cmmixer run data-scale` end to end (every cell,
the gathered files, a rerun that reuses everything, a fresh runs/ that restores from results/), a papermill run of
one cell, and a wrong option refused before any work."""
import hashlib, json, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import CMMIXER

ROOT = Path(__file__).resolve().parents[1]
SCALE = 'gpu-tiny'          # 60 videos of 2 clips at 32 px; the sets: 10, 42 and 168 videos


def item_hashes(cache, rows) -> set:
    "One hash per record of `cache` in `rows`: its frames and fbank arrays as prepared."
    return {hashlib.sha1(cache.frames[r].tobytes() + cache.fbank[r].tobytes()).hexdigest() for r in rows}


@pytest.fixture(scope='module')
def sets(tmp_path_factory):
    "The main cache and every pre-training set of seeds 0 and 1, under a temporary data root."
    from cmmixer.data_scale import main_cache, pretraining_cache
    root = tmp_path_factory.mktemp('data')
    main = main_cache(SCALE, root)
    made = {(s, seed): pretraining_cache(SCALE, s, seed, root) for s in ('pairs', 'train', 'train+extra')
            for seed in (0, 1)}
    return main, made


def test_sets_are_nested_and_disjoint_from_the_pools(sets):
    from cmmixer.data_scale import set_sizes
    from cmmixer.datasets import pair_subset
    main, made = sets
    pools = np.concatenate([main.indices('test'), main.indices('val')])
    pool_items = item_hashes(main, pools)
    pool_groups = set(main.manifest.loc[main.manifest['index'].isin(pools), 'group'])
    assert len(pool_items) == len(pools)                                  # every pool record tells itself apart
    items = {}
    for (name, seed), c in made.items():
        rows = c.indices('train')
        items[name, seed] = item_hashes(c, rows)
        assert not items[name, seed] & pool_items, f"{name}: a pre-training record is a pool record"
        assert not set(c.manifest.loc[c.manifest['index'].isin(rows), 'group']) & pool_groups, name
        assert c.stats == main.stats                                      # one normalisation for every set
    train = main.indices('train')
    assert items['train', 0] == item_hashes(main, train)
    sizes = set_sizes(SCALE)
    for seed in (0, 1):                                                   # pairs: the seed's 25 % fine-tuning videos
        assert items['pairs', seed] == item_hashes(main, pair_subset(train, 0.25, seed))
        assert item_hashes(main, pair_subset(train, 0.1, seed)) <= items['pairs', seed]
        assert items['pairs', seed] < items['train', seed] < items['train+extra', seed]
    assert items['pairs', 0] != items['pairs', 1]
    assert len(items['pairs', 0]) == round(0.25 * len(train)) and abs(len(train) - sizes['train']) <= 2
    assert items['train+extra', 0] == items['train+extra', 1]
    assert len(items['train+extra', 0]) == len(train) + sizes['train+extra'] - sizes['train']


def test_paired_cells_share_their_pairs_and_order(sets):
    from cmmixer.data_scale import Cell, pairing, set_sizes
    main, _ = sets
    n = set_sizes(SCALE)['train']
    dig = lambda start, seed, f=0.25, pt=n: pairing(main, Cell(0 if start == 'random' else pt, start, f, seed,
                                                                scale=SCALE), 8, 32)
    same = [dig(s, 0) for s in ('mixed', 'separate', 'random', 'every-patch')]
    same.append(dig('mixed', 0, pt=set_sizes(SCALE)['pairs']))
    assert all(d == same[0] for d in same)
    other = dig('mixed', 1)
    assert other['pairs'] != same[0]['pairs'] and other['order'] != same[0]['order']
    assert dig('mixed', 0, f=0.5)['pairs'] != same[0]['pairs']


def test_wrong_options_are_refused_before_any_work(tmp_path):
    p = subprocess.run([str(CMMIXER), 'run', 'data-scale', '--scale', SCALE, '--option', 'sets=pairs,all',
                        '--runs', str(tmp_path / 'runs'), '--data_root', str(tmp_path / 'data')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and 'sets' in p.stderr, p.stderr
    assert not (tmp_path / 'data').exists() and not (tmp_path / 'runs').exists()


@pytest.mark.slow
def test_study_end_to_end_resumes_and_restores(tmp_path):
    "Every cell at two seeds; a rerun runs nothing; a fresh runs/ restores every record from results/."
    args = [str(CMMIXER), 'run', 'data-scale', '--scale', SCALE, '--seeds', '2', '--fractions', '0.25,0.5',
            '--results', str(tmp_path / 'results'), '--data_root', str(tmp_path / 'data')]
    first = subprocess.run(args + ['--runs', str(tmp_path / 'runs')], capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert 'data-scale: ran 54 cells (18 groups), restored 0, reused 0' in first.stdout, first.stdout[-2000:]
    assert '[data-scale 18/18]' in first.stdout
    stem = tmp_path / 'results' / f'data_scale_synth_{SCALE}'
    rows = pd.read_csv(stem.with_suffix('.csv'))
    assert len(rows) == 2 * 27 and rows.seed.nunique() == 2
    for (seed, f), g in rows.groupby(['seed', 'fraction']):             # paired: one subset and one order per seed
        assert g.pairs.nunique() == 1 and g.order.nunique() == 1
    diffs = pd.read_csv(stem.with_name(stem.name + '_diffs.csv'))
    sizes = {f"{st}: {b} − {a} videos" for st in ('mixed', 'separate') for a, b in ((10, 42), (42, 168))}
    sizes.add('every-patch: 168 − 42 videos')
    assert set(diffs.comparison) == {'mixed − separate', 'mixed − random', 'separate − random',
                                     'every-patch − mixed', 'mixed − cca-inputs', 'mixed − cca-full'} | sizes
    budget = pd.read_csv(stem.with_name(stem.name + '_budget_references.csv'))
    assert len(budget) == 2 * 2 * 2 and set(budget.start) == {'cca-inputs', 'cca-full'}   # kinds x shares x seeds
    cells = rows[~rows.probe].drop_duplicates(['seed', 'fraction']).set_index(['seed', 'fraction'])
    for r in budget.itertuples():                                       # fitted on the very pairs the cells tuned on
        assert r.pairs == cells.loc[(r.seed, r.fraction), 'pairs'] and r.train_pairs == cells.loc[
            (r.seed, r.fraction), 'train_pairs']
    assert (diffs.n == 2).all() and (diffs.lo <= diffs['mean']).all() and (diffs['mean'] <= diffs.hi).all()
    assert stem.with_suffix('.png').is_file() and stem.with_name(stem.name + '_references.csv').is_file()
    recs = [json.loads(p.read_text()) for p in (tmp_path / 'results' / 'data_scale' / 'records').glob('*.json')]
    assert len(recs) == 54
    assert len({json.dumps(r['pools'], sort_keys=True) for r in recs}) == 1      # one test and one val pool for all sizes
    assert {r['pt_items'] for r in recs} == {0, 10, 41, 167}
    again = subprocess.run(args + ['--runs', str(tmp_path / 'runs')], capture_output=True, text=True, timeout=300)
    assert 'data-scale: ran 0 cells (0 groups), restored 0, reused 54' in again.stdout, again.stdout[-2000:]
    fresh = subprocess.run(args + ['--runs', str(tmp_path / 'fresh')], capture_output=True, text=True, timeout=300)
    assert 'data-scale: ran 0 cells (0 groups), restored 54, reused 0' in fresh.stdout, fresh.stdout[-2000:]
    assert pd.read_csv(stem.with_suffix('.csv')).equals(rows)


@pytest.mark.slow
def test_papermill_runs_one_cell(tmp_path):
    out = tmp_path / 'out.ipynb'
    params = dict(scale=SCALE, pt_videos=10, start='separate', fraction=0.25, seed=1, runs=str(tmp_path / 'runs'),
                  data_root=str(tmp_path / 'data'))
    base = [sys.executable, '-m', 'papermill', str(ROOT / 'nbs' / '07b_data_scale.ipynb'), str(out),
            '--no-progress-bar', '--cwd', str(ROOT / 'nbs')]
    cmd = base + [a for k, v in params.items() for a in ('-p', k, str(v))]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rec = json.loads((tmp_path / 'runs' / 'data_scale' / 'records' / f'{SCALE}_separate_pt10_frac0.25_seed1.json')
                     .read_text())
    assert rec['cell']['start'] == 'separate' and rec['pt_items'] == 10 and len(rec['pt_runs']) == 2
    bad = subprocess.run(base + ['-p', 'scale', SCALE, '-p', 'pt_videos', '5000'],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and 'pt_videos' in bad.stderr + bad.stdout

"""End-to-end: Table 2's runners (`cmmixer.baseline_runs.run_baseline` for the four baselines, `run_single_modal_mae` for the
single-modality-MAE ablation) on a 40-video SynthM2M at the smoke scale, one epoch each, through the experiment layer
(`run(Experiment(table='table2', ...))`): the two MAEs are pre-trained once and reused, the features extracted once,
every record has the keys the gather reads, on the pools CMMixer's evaluation draws; the gather writes Table 2."""
import json

import numpy as np
import pytest
import torch

from conftest import make_synth
from cmmixer.baselines import BASELINES
from cmmixer.baseline_runs import run_baseline, run_single_modal_mae
from cmmixer.experiment import Experiment, Where, flat_record, run
from cmmixer.cache import as_cache
from cmmixer.datasets import RetrievalDataset
from cmmixer.metrics import draw_pools

from conftest import CMMIXER


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_synth(tmp_path_factory.mktemp('bl') / 'tiny', 40, 14, 5)


def test_table2_runners(tiny_data, tmp_path):
    torch.set_num_threads(1)
    where = Where(runs=str(tmp_path / 'runs'), data_root=str(tmp_path / 'data'), device='cpu', workers=1, progress=False)
    exp = lambda m: Experiment(table='table2', method=m, scale='smoke', data=str(tiny_data), epochs=1, finetune_epochs=1, pool_size=2000)
    recs = {m: run(exp(m), where.runs, where.data_root, 'cpu', 1, progress=False) for m in BASELINES + ('single-mae',)}
    pre = sorted(p.name for p in (tmp_path / 'runs' / 'pretrain').iterdir())
    assert pre == ['tiny_smoke_frame-mae_seed0', 'tiny_smoke_spectrogram-mae_seed0'], pre   # one pair of MAEs for all five
    assert len(list((tmp_path / 'runs' / 'baselines' / 'features').glob('*.pt'))) == 1     # features extracted once
    cache = as_cache(next(iter(recs.values()))['cache'])
    pools = draw_pools(RetrievalDataset(cache, 'test').group_index, 2000, 0)
    for m, rec in recs.items():
        row = flat_record(rec)                                                 # what the gather reads
        assert row['method'] == m and row['v2m_N'] == len(pools['tracks']) and row['m2v_N'] == len(pools['videos'])
        assert rec['finetune_steps'] > 0 and np.isfinite(rec['final_loss']), (m, rec['finetune_steps'])
        assert rec['val'] is None or set(rec['val']) >= {'v2m', 'm2v'}
        json.dumps(rec)                                                        # a JSON record
    assert recs['cbvmr']['baseline']['inputs']['audio'] == ('handcrafted',)
    assert recs['cvmvae']['baseline']['config']['tag_dim'] == 26              # SynthM2M's observed factors as tags
    # a baseline on full-resolution hand-crafted features: no MAEs, the features of the same records prepared at the
    # generator's frame size, matched by id, standardised with train's statistics, computed once
    full = run(exp('cvmvae-fullres'), where.runs, where.data_root, 'cpu', 1, progress=False)
    assert full['baseline']['features'] == 'fullres' and full['baseline']['inputs']['video'] == ('fullres',)
    assert full['baseline']['config']['tag_dim'] == 26 and full['pretrain_runs'] == {}
    assert flat_record(full)['method'] == 'cvmvae-fullres' and full['finetune_run'] != recs['cvmvae']['finetune_run']
    banks = sorted((tmp_path / 'runs' / 'baselines' / 'features').glob('*_fullres_*.pt'))
    assert len(banks) == 1, banks
    bank = torch.load(banks[0], weights_only=True)
    from cmmixer.references import cache_features, full_resolution_cache
    fc = as_cache(full_resolution_cache(cache, tmp_path / 'data', 1))
    assert int(fc.meta['cfg']['image_size']) >= int(cache.meta['cfg']['image_size'])
    row_of = dict(zip(fc.manifest['id'], fc.manifest['index'].astype(int)))
    feats = {s: cache_features(fc, [row_of[i] for i in cache.manifest['id'].to_numpy()[RetrievalDataset(cache, s).rows]])
             for s in ('train', 'test')}
    mu, sd = (f(feats['train'][0].reshape(-1, 31), 0) for f in (np.mean, np.std))
    assert (bank['test']['rows'].numpy() == RetrievalDataset(cache, 'test').rows).all()
    np.testing.assert_allclose(bank['test']['video_fullres'].numpy(), (feats['test'][0] - mu) / np.maximum(sd, 1e-6),
                               rtol=1e-3, atol=1e-3)
    again = run_baseline(exp('mvpt'), where)                                  # a finished run is reused: the same numbers
    assert again['v2m'] == recs['mvpt']['v2m'] and again['finetune_run'] == recs['mvpt']['finetune_run']
    from cmmixer.tables.table2 import write_table2
    w = write_table2(where.runs, str(tiny_data), 'smoke', tmp_path / 'results')
    t = w['table']
    assert list(t[t.kind == 'method'].method) == ['CBVMR', 'CMMVR', 'CVMVAE', 'MVPt', 'single-modality MAEs (ablation)']
    assert t.set_index('method').loc['CVMVAE', 'inputs'] == 'mae'              # no search yet: the MAE features' record
    assert t.loc[t.method == 'MVPt', 'v2m_R@1_paper'].item() == 6.22 and (tmp_path / 'results' / 'table2_tiny_smoke.png').is_file()
    assert w['ratio'] == {}                                                   # no CMMixer records here: no ratio claimed
    # Table 2's budget on a real runner: the same row at 0.5x and 2x its recipe's lr is two more runs of their own
    # (their own records and folders, the lr in their recipes), chosen on val; asked again, all three are reused.
    from cmmixer.experiment import tune_lr, record_path
    assert recs['cbvmr']['val'] is not None, 'the tiny SynthM2M has a val split: the budget is spent there'
    kw = dict(data_root=where.data_root, device='cpu', workers=1, progress=False)
    tuned = tune_lr(exp('cbvmr'), (0.5, 1.0, 2.0), where.runs, **kw)
    lr0 = recs['cbvmr']['finetune']['lr']
    assert [t['lr'] for t in tuned['trials']] == pytest.approx([lr0 / 2, lr0, lr0 * 2])
    runs_ = [json.loads(record_path(exp('cbvmr'), where.runs).with_name(t['record']).read_text()) for t in tuned['trials']]
    assert len({r['finetune_run'] for r in runs_}) == 3 and runs_[1]['finetune_run'] == recs['cbvmr']['finetune_run']
    assert runs_[0]['v2m'] != runs_[2]['v2m'] or runs_[0]['final_loss'] != runs_[2]['final_loss']   # the lr changed the training
    best = max(tuned['trials'], key=lambda t: t['val_score'])
    assert tuned['lr_scale'] in (0.5, 1.0, 2.0) and tuned['trials'][[0.5, 1.0, 2.0].index(tuned['lr_scale'])]['val_score'] == best['val_score']
    mtimes = [record_path(exp('cbvmr'), where.runs).with_name(t['record']).stat().st_mtime_ns for t in tuned['trials']]
    assert tune_lr(exp('cbvmr'), (0.5, 1.0, 2.0), where.runs, **kw) == tuned
    assert mtimes == [record_path(exp('cbvmr'), where.runs).with_name(t['record']).stat().st_mtime_ns for t in tuned['trials']]


@pytest.mark.slow
def test_table2_command_runs_the_budget(tiny_data, tmp_path):
    """`make table2` at the smoke size (`cmmixer run table2`): every row's lr (0.5, 1, 2) searched on val at seed 0, the
    seeds at the choices (here one: the trials are the runs), Table 2 written with its search; run again, all reused."""
    import subprocess, sys
    import pandas as pd
    from pathlib import Path
    ROOT = Path(__file__).resolve().parents[1]
    out = tmp_path / 'results'
    args = [CMMIXER, 'run', 'table2', '--seeds', '1', '--scale', 'smoke', '--data', str(tiny_data),
            '--epochs', '1', '--finetune_epochs', '1', '--runs', str(tmp_path / 'runs'), '--data_root', str(tmp_path / 'data'),
            '--results', str(out), '--device', 'cpu']
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    tune = pd.read_csv(out / 'table2_tiny_smoke_tuning.csv')
    # eight rows, three trials each (a baseline's at both inputs), one choice each
    assert len(tune) == 4 * 2 * 3 + 4 * 3 and tune.groupby('row').chosen.sum().eq(1).all()
    assert set(tune.inputs) == {'mae', 'fullres', 'pixels'}
    assert sorted(set(tune.lr_scale)) == [0.5, 1.0, 2.0]
    t = pd.read_csv(out / 'table2_tiny_smoke.csv')
    m = t[t.kind == 'method'].set_index('method')
    assert list(m.index) == ['CBVMR', 'CMMVR', 'CVMVAE', 'MVPt', 'single-modality MAEs (ablation)', 'CMMixer-Solo', 'CMMixer-Duet']
    chosen = tune[tune.chosen].set_index('row').lr_scale
    assert all(m.loc[r, 'lr_scale'] == chosen[r] for r in m.index) and (m.seeds == 1).all()
    assert 'no pre-training' in set(t.method) and (out / 'table2_tiny_smoke.png').is_file()
    records = sorted(p.name for p in (tmp_path / 'runs' / 'records').rglob('*_seed*.json'))
    assert len(records) == 36, records                                                 # seed 0 only: the trials are the runs
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and 'table2: ran 0, reused 36, restored 0;' in again.stdout, again.stdout[-2000:]

"""End-to-end: `cmmixer run figures` (chapters 07_analysis, 09f_figures) run as a user runs it, on Table 1-like records of a
tiny pre-training run and two tiny fine-tuned retrievers (everything in a temporary folder), with its default analysis
settings (10 songs, 10 categories, k = 5); and its refusal of a missing record."""
import json, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import CMMIXER

REPO = Path(__file__).resolve().parents[1]


def figures(*args, timeout=300):
    return subprocess.run([CMMIXER, 'run', 'figures', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def records(tmp_path_factory):
    "Records pre_seed0.json / rnd_seed0.json naming a tiny pre-training run and two tiny fine-tuned retrievers."
    from cmmixer.mae import MAEConfig
    from cmmixer.train import TrainConfig
    from cmmixer.pretrain import Scale, ensure_cache, pretrain, load_pretrained
    from cmmixer.retrieval import Retriever, RetrieverConfig, finetune, finetune_config
    tmp = tmp_path_factory.mktemp('analysis')
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        tiny = Scale('tiny', 2, 16, MAEConfig(image_size=16, patch_size=8, clips=2, embed_dim=32, depth=1, num_heads=2,
                                              decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2),
                     TrainConfig(epochs=1, batch_size=4, lr=1e-3, min_lr=1e-5, warmup_epochs=0, bf16=False, progress=False),
                     synth=dict(videos=60, tracks=16, duration=2.0, image_size=32, fps=4.0, clips=2, splits=(0.5, 0.0, 0.5)))
        cache = ensure_cache('synth', tiny, root=tmp / 'data', workers=1)
        pt = pretrain(cache, tiny, out_dir=tmp / 'pretrain')
        for name, enc in (('pre', load_pretrained(pt).encoder), ('rnd', None)):
            r = Retriever(RetrieverConfig(mae=tiny.mae, proj_dim=8), enc)
            finetune(r, cache, finetune_config('smoke', epochs=1, out_dir=tmp / name, batch_size=4, progress=False))
    finally: torch.set_num_threads(threads)
    recs = tmp / 'records'; recs.mkdir()
    (recs / 'pre_seed0.json').write_text(json.dumps(dict(pretrain_run=str(pt), finetune_run=str(tmp / 'pre'))))
    (recs / 'rnd_seed0.json').write_text(json.dumps(dict(pretrain_run=None, finetune_run=str(tmp / 'rnd'))))
    return recs


def test_figures_tool(records, tmp_path):
    out = tmp_path / 'analysis'
    p = figures('--seeds', 1, '--results', tmp_path, '--option', f'records={records}', 'pretrained=pre_seed{seed}',
                'random=rnd_seed{seed}')
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(f.name for f in out.iterdir()) == ['analysis.csv', 'fig2_mixers.png', 'fig5_tsne.png', 'fig6_zero_shot_energy.png',
                                                     'fig6_zero_shot_register.png', 'fig7_spectrograms.png', 'fig8_frames.png', 'table6.csv']
    df = pd.read_csv(out / 'analysis.csv')
    assert set(df.figure) == {'Fig. 5', 'Fig. 6', 'Figs. 7-8'} and set(df.model) == {'pre-trained', 'random init'}
    assert df.value.notna().all() and (df.pretrained == 'pre_seed0').all()
    assert 'wrote' in p.stdout


def test_figures_tool_missing_record(tmp_path):
    p = figures('--seeds', 1, '--results', tmp_path / 'x', '--option', f'records={tmp_path}', 'pretrained=nothing_seed{seed}')
    assert p.returncode == 2 and 'record' in p.stderr
    assert not (tmp_path / 'x').exists()

"""End-to-end tests of the retrieval chapters (cmmixer.retrieval, cmmixer.indexing, cmmixer.recommend) in subprocesses, as users run them.

- fine-tuning under torchrun (2 gloo processes) equals one process: InfoNCE negatives are the GLOBAL batch
  (embeddings gathered with gradients), so losses and final weights match;
- a real interruption (SIGINT) of build_index keeps the finished files, and the next build resumes;
- `cmmixer run table1` (the tables layer) runs one variant, one seed, tiny budgets, each run in its own process,
  and gathers it.

This file is also the job that torchrun starts:  python tests/test_retrieval_e2e.py ddp-job CACHE OUT
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import CMMIXER

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

TINY = dict(image_size=16, patch_size=8, clips=2, embed_dim=32, depth=1, num_heads=2,
            decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env['OMP_NUM_THREADS'] = '1'
    return env


def _run(cmd, timeout=600, cwd=ROOT):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def tiny_cache(root: Path, n_tracks=4, per_track=2, natural=2):
    "Generated media (plain colours, tones) and their prepared cache: all in the train split."
    from cmmixer.encode import write_media
    from cmmixer.media import MediaConfig
    from cmmixer.data import Record
    from cmmixer.cache import prepare
    recs, t = [], np.arange(int(5.0 * 16000)) / 16000
    for k in range(n_tracks):
        write_media(root / 'music' / f'track{k}.wav', audio=(0.3 * np.sin(2 * np.pi * 180 * 1.3 ** k * t)).astype(np.float32)[None])
        for v in range(per_track):
            name = f'v{k}{v}'
            col = np.array([(40 * k + 20 * v) % 255, 255 - 50 * k, 60 * v + 30], np.uint8)
            write_media(root / 'videos' / f'{name}.mp4', np.broadcast_to(col, (12, 32, 32, 3)).copy(), fps=8)
            recs.append(Record(name, str(root / 'videos' / f'{name}.mp4'), str(root / 'music' / f'track{k}.wav'),
                               1.0 * v, f'track{k}', [], 'train'))
    for n in range(natural):
        name = f'nat{n}'
        write_media(root / 'videos' / f'{name}.mp4', np.full((12, 32, 32, 3), 200 - 60 * n, np.uint8), fps=8,
                    audio=(0.2 * np.sin(2 * np.pi * 700 * (n + 1) * t[:24000])).astype(np.float32)[None])
        recs.append(Record(name, str(root / 'videos' / f'{name}.mp4'), None, 0.0, name, [], 'train'))
    prepare(recs, root / 'cache', MediaConfig(clips=2, image_size=16, min_duration_s=0.5), workers=1, progress=False)
    return root / 'cache'


def ddp_job(cache, out):
    "Fine-tune a tiny retriever (same initial weights in every process) with the engine; rank 0 writes OUT."
    from cmmixer.retrieval import Retriever, RetrieverConfig, finetune
    from cmmixer.train import TrainConfig
    torch.manual_seed(0)
    model = Retriever(RetrieverConfig(mae=TINY, proj_dim=8, shared_negatives=False), seed=0)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=2e-3, min_lr=1e-5, warmup_epochs=0.5, seed=1, out_dir=str(out),
                      progress=False, device='cpu')
    finetune(model, cache, cfg, repeats=2)
    info = dict(rank=int(os.environ.get('RANK', 0)), world_size=int(os.environ.get('WORLD_SIZE', 1)))
    Path(out, f"rank{info['rank']}.json").write_text(json.dumps(info))


def test_ddp_finetune_equals_single_process(tmp_path):
    from safetensors.torch import load_file
    from cmmixer.checkpoint import read_log
    cache = tiny_cache(tmp_path / 'media')
    one, two = tmp_path / 'one', tmp_path / 'two'
    _run([sys.executable, THIS, 'ddp-job', cache, one])
    _run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', THIS, 'ddp-job', cache, two])
    assert [json.loads((two / f'rank{i}.json').read_text())['world_size'] for i in range(2)] == [2, 2]
    a, b = read_log(one), read_log(two)
    assert a.step.tolist() == b.step.tolist() == list(range(4))        # 10 items x 2 repeats // 8 = 2 steps an epoch, 2 epochs
    for col in ('loss', 'loss_v2m', 'loss_m2v', 'batch_r1'):
        torch.testing.assert_close(torch.tensor(b[col].values), torch.tensor(a[col].values), rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{col}: {m}")
    wa = load_file(str(one / 'checkpoint' / 'model.safetensors')); wb = load_file(str(two / 'checkpoint' / 'model.safetensors'))
    D = TINY['embed_dim']
    for k in wa:
        x, y = wb[k], wa[k]
        if k.endswith('attn.qkv.bias'):
            # the key bias has an exactly-zero gradient (softmax ignores a constant added to every key); Adam turns
            # its float-rounding noise into steps of up to lr, whatever the world size: compare q and v strictly only
            torch.testing.assert_close(x[D:2 * D], y[D:2 * D], rtol=0, atol=2e-3 * 4)
            x, y = torch.cat([x[:D], x[2 * D:]]), torch.cat([y[:D], y[2 * D:]])
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6, msg=lambda m: f"{k}: {m}")
    assert a.loss.iloc[-2:].mean() < a.loss.iloc[:2].mean()


def _checkpoint(tmp_path):
    "A retriever checkpoint with its input spec, after a few fine-tuning steps on the tiny cache."
    from cmmixer.retrieval import Retriever, RetrieverConfig, finetune, finetune_config
    cache = tiny_cache(tmp_path / 'media')
    torch.manual_seed(0)
    model = Retriever(RetrieverConfig(mae=TINY, proj_dim=8))
    finetune(model, cache, finetune_config('smoke', epochs=2, out_dir=tmp_path / 'run', batch_size=4, progress=False))
    return tmp_path / 'run', tmp_path / 'media'


SLOW_BUILD = """
import signal, sys, time
# A shell starts background jobs with SIGINT ignored and Python then installs no KeyboardInterrupt handler:
# restore it, so the test behaves as a user's Ctrl-C however the suite itself was launched.
signal.signal(signal.SIGINT, signal.default_int_handler)
import cmmixer.indexing as I
real = I._embed_file
def slow(*a):
    time.sleep(0.4); return real(*a)
I._embed_file = slow
I.build_index(sys.argv[1], sys.argv[2], sys.argv[3], progress=False)
"""


def test_index_build_resumes_after_sigint(tmp_path):
    from cmmixer.indexing import build_index, Index
    from cmmixer.recommend import recommend
    ckpt, media = _checkpoint(tmp_path)
    lib = tmp_path / 'lib'; lib.mkdir()
    for i in range(12):                                                # 12 tracks (copies of 4 tones, other names)
        (lib / f'song{i:02d}.wav').write_bytes((media / 'music' / f'track{i % 4}.wav').read_bytes())
    (lib / 'broken.mp3').write_bytes(b'\x00garbage' * 50)
    out = tmp_path / 'index'
    p = subprocess.Popen([sys.executable, '-c', SLOW_BUILD, lib, ckpt, out], cwd=ROOT, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / 'shards').glob('*.npz'))) < 4: time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and 'KeyboardInterrupt' in err, err[-2000:]
    done = len(list((out / 'shards').glob('*.npz'))) + len(list((out / 'shards').glob('*.reject.json')))
    assert 4 <= done < 13 and not (out / 'index.json').exists()
    s = build_index(lib, ckpt, out, progress=False)
    assert (s['files'], s['indexed'], s['rejected'], s['reused']) == (13, 12, 1, done)
    whole = build_index(lib, ckpt, tmp_path / 'whole', progress=False)
    np.testing.assert_array_equal(np.load(out / 'embeddings.npy'), np.load(tmp_path / 'whole' / 'embeddings.npy'))
    assert pd.read_csv(out / 'rejects.csv').file.tolist() == ['broken.mp3']
    rec = recommend(media / 'videos' / 'v00.mp4', out, top=5)
    assert len(rec) == 5 and rec.score.is_monotonic_decreasing and Index(out).modality == 'audio'


@pytest.mark.slow
def test_table1_driver_one_variant(tmp_path):
    """`cmmixer run table1` (one process per run: cache, pre-training, fine-tuning, evaluation) and the gather's CSV + PNG;
    run again, it reuses every run; the references and the verdict; the data-efficiency study."""
    where = ['--runs', tmp_path / 'runs', '--results', tmp_path / 'results', '--data_root', tmp_path / 'data']
    table1 = [CMMIXER, 'run', 'table1', '--scale', 'smoke', '--variants', 'solo:cutmix',
              '--seeds', '1', *where]
    r = _run(table1 + ['--epochs', '1', '--finetune_epochs', '1', '--no_baselines'], timeout=900)
    assert '[table1 1/1] synth_smoke_solo_cutmix_seed0.json: ran in' in r.stdout, r.stdout[-2000:]
    res = json.loads((tmp_path / 'results' / 'retrieval' / 'synth_smoke_solo_cutmix_seed0.json').read_text())
    for d in ('v2m', 'm2v'):
        assert {'R@1', 'R@5', 'R@10', 'MedR', 'N'} <= set(res[d]) and res[f'chance_{d}']['R@1'] == 100 / res[d]['N']
        assert res['whole_track'][d]['N'] == res[d]['N']             # the whole-track scoring, on the same pools
    assert res['params']['decoder'] == 'solo' and res['finetune_steps'] > 0
    assert {'cache_s', 'pretrain_s', 'finetune_s', 'evaluate_s', 'total_s'} <= set(res['times'])
    from cmmixer.datasets import group_overlap
    cache = next((tmp_path / 'data').glob('*_cache'))
    assert group_overlap(cache) == set()                               # the pool's tracks and videos were never trained on
    t = pd.read_csv(tmp_path / 'results' / 'table1_synth_smoke.csv')
    assert len(t) == 1 and t['v2m_R@1_paper'].iloc[0] == 11.2 and t.seeds.iloc[0] == 1
    assert (tmp_path / 'results' / 'table1_synth_smoke.png').stat().st_size > 10_000
    assert (tmp_path / 'runs' / 'logs' / 'table1' / 'synth_smoke_solo_cutmix_seed0.log').stat().st_size > 0   # the run's log
    rec_path = tmp_path / 'runs' / 'records' / 'table1' / 'synth_smoke_solo_cutmix_seed0.json'
    rec = json.loads(rec_path.read_text())                             # the record: what made it, the code, the wall time
    assert rec['experiment']['scale'] == 'smoke' and rec['code']['cmmixer'] and rec['wall_s'] > 0
    assert res == rec                                                  # the copy in results/
    # a finished run is kept (its record untouched), and a wrong parameter fails before any work
    mtime = rec_path.stat().st_mtime_ns
    again = _run(table1 + ['--epochs', '1', '--finetune_epochs', '1', '--no_baselines'])
    assert 'table1: ran 0, reused 1, restored 0;' in again.stdout and rec_path.stat().st_mtime_ns == mtime, again.stdout[-1000:]
    bad = subprocess.run([CMMIXER, 'run', 'table1', '--pool_size', '1', '--runs', tmp_path / 'x'],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and '--pool_size' in bad.stderr and not (tmp_path / 'x').exists(), bad.stderr
    # the references on the same pools (random init, the two probes, CCA three ways, the oracle) and the verdict line
    refs = _run(table1 + ['--epochs', '1', '--finetune_epochs', '1', '--verdict'], timeout=900)
    rf = pd.read_csv(tmp_path / 'results' / 'table1_synth_smoke_references.csv')
    assert list(rf.method) == ['chance', 'no pre-training', 'probe: pre-trained encoder', 'probe: random encoder',
                               'CCA, full resolution', 'CCA, cache features', "CCA, the model's inputs", 'oracle']
    assert rf.set_index('method').loc['oracle', 'v2m_MedR_mean'] < rf.set_index('method').loc['chance', 'v2m_MedR_mean']
    line = next(l for l in refs.stdout.splitlines() if l.startswith('verdict'))
    assert 'random init' in line and 'CCA on its inputs' in line and 'CCA full-res' in line, line
    assert (tmp_path / 'results' / 'table1_synth_smoke_track_scoring.csv').exists()
    # the data-efficiency figure: both inits at a share of the pairs, gathered with the scale's own share
    _run([CMMIXER, 'run', 'data-efficiency', '--scale', 'smoke', '--seeds', '1', '--epochs', '1',
          '--finetune_epochs', '1', '--fractions', '0.5', *where], timeout=900)
    de = pd.read_csv(tmp_path / 'results' / 'data_efficiency_synth_smoke.csv')
    assert sorted(set(zip(de.fraction, de.pre_training))) == [(0.5, 'CMMixer-Solo-CutMix'), (0.5, 'none (random init)'),
                                                             (1.0, 'CMMixer-Solo-CutMix'), (1.0, 'none (random init)')]
    assert de[de.fraction == 0.5].train_pairs.max() < de[de.fraction == 1.0].train_pairs.min()
    assert (tmp_path / 'results' / 'data_efficiency_synth_smoke.png').stat().st_size > 10_000


if __name__ == '__main__':
    if sys.argv[1] == 'ddp-job': ddp_job(sys.argv[2], sys.argv[3])

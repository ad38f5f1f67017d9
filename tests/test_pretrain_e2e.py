"""End-to-end: the pre-training experiment (nbs/09e_pretraining.ipynb) run by papermill, as a user runs it, on a tiny SynthM2M
made with the `cmmixer synth` command (everything it writes goes to a temporary folder); and `pretrain` under torchrun
(two gloo processes) trains exactly like one process."""
import json, os, subprocess, sys, textwrap, time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import run_cli, make_synth

REPO = Path(__file__).resolve().parents[1]
NB = REPO / 'nbs' / '09e_pretraining.ipynb'


def papermill(out_nb, *params, timeout=300):
    "Run the pre-training chapter with papermill from the repo root; `params` are (name, value) pairs. CompletedProcess."
    args = [sys.executable, '-m', 'papermill', str(NB), str(out_nb), '--no-progress-bar']
    for k, v in params: args += ['-p', k, str(v)]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def tiny_synth(tmp_path_factory):
    "16 three-second SynthM2M videos of 32 px (about 10 for training) through the command line."
    return make_synth(tmp_path_factory.mktemp('pretrain') / 'synth', 16, 5, 1)


@pytest.mark.slow     # 50-65 s: the chapter's torch.compile check compiles cold (about 25 s) on a fresh machine
def test_papermill_pretrain_smoke(tiny_synth, tmp_path):
    t0 = time.time()
    p = papermill(tmp_path / 'out.ipynb', ('mixer', 'cutmix'), ('decoder', 'solo'), ('epochs', 2), ('data', tiny_synth),
                  ('root', tmp_path / 'data'), ('runs', tmp_path / 'runs'))
    assert p.returncode == 0, p.stderr[-3000:]
    run_id = 'synth_smoke_solo_cutmix_seed0'                               # <data folder>_<scale>_<decoder>_<mixer>_seed<S>
    run = tmp_path / 'runs' / run_id
    res = run / 'report'                                                   # the report stays with the run (results/: gather targets only)
    assert (run / 'checkpoint' / 'model.safetensors').stat().st_size > 0
    assert json.loads((run / 'checkpoint' / 'config.json').read_text())['pretrain']['mixer']['name'] == 'cutmix'
    assert (run / 'log.jsonl').is_file() and (tmp_path / 'data' / 'synth_4x32_cache' / 'meta.json').is_file()
    log = pd.read_csv(res / 'log.csv')
    summary = json.loads((res / 'summary.json').read_text())
    assert summary['steps'] == len(log) >= 2 and summary['epochs'] == 2 and summary['final_loss'] > 0
    for f in ('loss_curve.png', 'reconstruction.png'):
        assert (res / f).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', f
    assert not list(res.glob('*.safetensors'))                           # reports stay small: weights live in the checkpoint
    nb = json.loads((tmp_path / 'out.ipynb').read_text())                 # the outputs (bars, figures) stay small
    outputs = sum(len(json.dumps(c.get('outputs', []))) for c in nb['cells'])
    assert outputs < 100_000, outputs
    print(f"papermill smoke run: {time.time() - t0:.0f} s")


BAD = [('mixer', 'cutout', 'mixer'), ('decoder', 'trio', 'decoder'), ('scale', 'huge', 'scale'), ('epochs', 0, 'epochs'),
       ('device', 'tpu', 'device')]
if not torch.cuda.is_available(): BAD.append(('scale', 'paper', 'device'))   # the paper scale refuses a machine without a GPU


@pytest.mark.parametrize('name,value,expect', BAD[:1] + [pytest.param(*b, marks=pytest.mark.slow) for b in BAD[1:]])
def test_bad_parameter_fails_first(name, value, expect, tmp_path):
    p = papermill(tmp_path / 'out.ipynb', (name, value), ('root', tmp_path / 'data'), ('runs', tmp_path / 'runs'))
    assert p.returncode != 0
    nb = json.loads((tmp_path / 'out.ipynb').read_text())
    failed = [i for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code' and
              any(o.get('output_type') == 'error' for o in c.get('outputs', []))]
    assert len(failed) == 1, failed
    cell = nb['cells'][failed[0]]
    assert 'check_pretrain_experiment' in ''.join(cell['source'])        # the check right after the parameters
    err = [o for o in cell['outputs'] if o.get('output_type') == 'error'][0]
    assert err['ename'] == 'ValueError' and err['evalue'].startswith(expect), err['evalue']
    code = [c for c in nb['cells'] if c['cell_type'] == 'code']
    assert code.index(cell) <= 8                                         # among the first cells, before any compute
    assert not (tmp_path / 'data').exists() and not (tmp_path / 'runs').exists()


DDP_JOB = textwrap.dedent("""
    import sys, torch
    from cmmixer.mae import MAEConfig
    from cmmixer.train import TrainConfig
    from cmmixer.pretrain import Scale, ensure_cache, pretrain
    if __name__ == '__main__':
        root, out, mixer = sys.argv[1:4]
        mae = MAEConfig(image_size=16, patch_size=8, clips=2, embed_dim=32, depth=1, num_heads=2,
                        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
        train = TrainConfig(epochs=2, batch_size=4, lr=1e-3, min_lr=1e-5, warmup_epochs=0, bf16=False, progress=False)
        synth = dict(videos=8, tracks=3, duration=2.0, image_size=32, fps=4.0, clips=2, splits=(0.75, 0.0, 0.25))
        scale = Scale('tiny', 2, 16, mae, train, synth, repeats=2)
        pretrain(ensure_cache('synth', scale, root=root, workers=1), scale, mixer=mixer, out_dir=out)
""")


def test_pretrain_ddp_equals_one_process(tmp_path):
    "Two gloo processes under torchrun pre-train exactly like one (per-sample mixer masks and masking noise)."
    job = tmp_path / 'job.py'; job.write_text(DDP_JOB)
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env['OMP_NUM_THREADS'] = '1'                       # what torchrun sets for its workers; the same for the reference
    one, two = tmp_path / 'one', tmp_path / 'two'
    torchrun = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']
    for out, launcher in ((one, [sys.executable]), (two, torchrun)):
        r = subprocess.run([*launcher, str(job), str(tmp_path / 'data'), str(out), 'cutmix'], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr[-3000:]
    assert torch.load(two / 'state.pt', weights_only=True)['world_size'] == 2
    a, b = (pd.read_json(d / 'log.jsonl', lines=True) for d in (one, two))
    assert a.step.tolist() == b.step.tolist() and len(a) >= 4
    assert torch.allclose(torch.tensor(a.loss.values), torch.tensor(b.loss.values), rtol=1e-5, atol=1e-6)
    assert torch.allclose(torch.tensor(a.video_share.values), torch.tensor(b.video_share.values), rtol=1e-6)

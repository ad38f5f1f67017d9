"""cmmixer.train under torchrun: two gloo processes on the CPU train like one process on the same global batch."""
import json, os, subprocess, sys
from pathlib import Path
import torch
from safetensors.torch import load_file
from cmmixer.checkpoint import read_log

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / 'tests' / 'ddp_job.py'

def _env():
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env['OMP_NUM_THREADS'] = '1'          # what torchrun sets for its workers; the same for the reference run
    return env

def _run(cmd):
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"

def test_ddp_equals_single_process(tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    _run([sys.executable, str(JOB), str(one)])
    _run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(JOB), str(two)])

    # it really ran as two processes, each on half of every global batch
    r = [json.loads((two / f'rank{i}.json').read_text()) for i in range(2)]
    s = json.loads((one / 'rank0.json').read_text())
    assert [x['world_size'] for x in r] == [2, 2] and s['world_size'] == 1
    assert torch.load(two / 'state.pt', weights_only=True)['world_size'] == 2
    assert len(s['seen']) == 12 and all(len(b) == 8 for b in s['seen'])
    for step, batch in enumerate(s['seen']):
        assert r[0]['seen'][step] + r[1]['seen'][step] == batch      # the same global batch, split in two
        assert not set(r[0]['seen'][step]) & set(r[1]['seen'][step])

    # the same losses (all-reduced mean over ranks vs one process) within 1e-5 relative
    a, b = read_log(one), read_log(two)
    assert a.step.tolist() == b.step.tolist() == list(range(12))
    assert a.lr.tolist() == b.lr.tolist()
    for col in ('loss', 'mse', 'nce'):
        ta, tb = torch.tensor(a[col].values), torch.tensor(b[col].values)
        torch.testing.assert_close(tb, ta, rtol=1e-5, atol=0, msg=lambda m: f"{col}: {m}")
    assert a.loss.iloc[-3:].mean() < a.loss.iloc[:3].mean()          # and it trained

    # the same final weights
    wa, wb = load_file(str(one / 'checkpoint' / 'model.safetensors')), load_file(str(two / 'checkpoint' / 'model.safetensors'))
    assert wa.keys() == wb.keys()
    for k in wa: torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-6)
    print('\nstep  loss(1 proc)        loss(2 procs)       rel.diff')
    for i in range(len(a)):
        print(f"{i:4d}  {a.loss[i]:.10f}  {b.loss[i]:.10f}  {abs(a.loss[i] - b.loss[i]) / abs(a.loss[i]):.2e}")

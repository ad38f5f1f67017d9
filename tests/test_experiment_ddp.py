"""The experiment entry point under torchrun: `torchrun --nproc_per_node=2 -m cmmixer.experiment run ...` (two gloo
processes on the CPU) prepares the data once, trains data-parallel and writes the same record as one process; killed
in the middle of pre-training and started again, it resumes and writes that record again."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

from conftest import make_synth
from test_experiment_e2e import comparable, diff

ROOT = Path(__file__).resolve().parents[1]
NAME = 'tiny_smoke_solo_cutmix_seed0.json'
COMMON = ['--scale', 'smoke', '--epochs', '2', '--finetune_epochs', '1', '--seed', '0', '--quiet', '--threads', '1']
FLOAT = ('R@', 'MedR', 'MeanR', 'loss', 'score')                       # may move by float rounding between 1 and 2 processes


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env['OMP_NUM_THREADS'] = '1'
    return env


def cmd(n, data, runs, data_root):
    entry = ['-m', 'cmmixer.experiment', 'run', '--data', str(data), '--runs', str(runs), '--data_root', str(data_root), *COMMON]
    if n == 1: return [sys.executable, *entry]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={n}', *entry]


def record(runs): return json.loads((Path(runs) / 'records' / 'table1' / NAME).read_text())


def close(a, b):
    "Two records agree: every leaf equal, except metrics and losses, which agree to float rounding."
    ca, cb = comparable(a), comparable(b)
    for k in ('world_size', 'cache'): ca.pop(k, None); cb.pop(k, None)          # how many processes; where its data went
    assert ca.keys() == cb.keys(), diff(ca, cb)
    bad = {}
    for k in ca:
        x, y = ca[k], cb[k]
        if x == y: continue
        if any(f in k for f in FLOAT) and isinstance(x, (int, float)) and isinstance(y, (int, float)) and abs(x - y) <= 1e-3 * max(1, abs(x)): continue
        bad[k] = (x, y)
    assert not bad, bad


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_synth(tmp_path_factory.mktemp('ddp') / 'tiny', 40, 14, 5)


@pytest.mark.slow
def test_two_processes_write_the_record_of_one(data, tmp_path):
    one = subprocess.run(cmd(1, data, tmp_path / 'one', tmp_path / 'd1'), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(cmd(2, data, tmp_path / 'two', tmp_path / 'd2'), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = record(tmp_path / 'one'), record(tmp_path / 'two')
    assert (a['world_size'], b['world_size']) == (1, 2)
    assert len([l for l in two.stdout.splitlines() if l.startswith('wrote')]) == 1     # rank 0 alone reports
    close(a, b)

    # killed during pre-training, then started again: it resumes and writes the same record
    runs = tmp_path / 'killed'
    p = subprocess.Popen(cmd(2, data, runs, tmp_path / 'd2'), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    logs, t0 = runs / 'pretrain', time.time()
    while time.time() - t0 < 600 and p.poll() is None:
        rows = sum(len(f.read_text().splitlines()) for f in logs.glob('*/log.jsonl')) if logs.exists() else 0
        if rows >= 3: break
        time.sleep(0.2)
    assert p.poll() is None, 'the run ended before it could be killed'
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert not (runs / 'records' / 'table1' / NAME).exists()
    again = subprocess.run(cmd(2, data, runs, tmp_path / 'd2'), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    close(b, record(runs))

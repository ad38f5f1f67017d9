"""End-to-end: one small experiment run three ways (the `python -m cmmixer.experiment` entry point from the project
root, papermill with `--cwd nbs` as JupyterLab would, and in the slow tier papermill from the root) gives the same
record; nothing is written under nbs/ and results/ is left as it was; a wrong parameter or the paper scale without a
GPU is refused in seconds, before any work."""
import json, shutil, subprocess, sys, time, uuid
from pathlib import Path

import pytest
import torch

from conftest import CMMIXER, make_synth

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / 'nbs' / '04_retrieval.ipynb'
VOLATILE = {'code', 'wall_s', 'created', 'times', 'path', 'reused', 'pretrain_run', 'finetune_run'}


def git_status(*paths):
    "Porcelain status of `paths` (untracked files included), or None outside a git checkout."
    if not (ROOT / '.git').exists(): return None
    return subprocess.run(['git', '-C', str(ROOT), 'status', '--porcelain', '--untracked-files=all', '--', *paths],
                          capture_output=True, text=True, check=True).stdout


def leaves(obj, pre=''):
    "Flatten nested dicts into {'a.b.c': value}."
    if isinstance(obj, dict): return {k: v for key, val in obj.items() for k, v in leaves(val, f'{pre}{key}.').items()}
    return {pre.rstrip('.'): obj}


def diff(a, b):
    "The leaves of two records that differ (for the failure message)."
    la, lb = leaves(a), leaves(b)
    return {k: (la.get(k), lb.get(k)) for k in sorted(set(la) | set(lb)) if la.get(k) != lb.get(k)}


def comparable(rec):
    "A record's leaves without what differs between two runs of one experiment (times, where its runs went, code state)."
    out = {k: v for k, v in leaves({k: v for k, v in rec.items() if k not in VOLATILE}).items()
           if not k.endswith('seconds') and k not in ('finetune.out_dir', 'finetune.progress')}   # execution only
    assert len(out) > 100                                                 # metrics, pools, configs: what must agree
    return out


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    "40 SynthM2M videos (M2M layout) through the command line: a dataset folder for `data`."
    return make_synth(tmp_path_factory.mktemp('exp') / 'tiny', 40, 14, 5)


def papermill(out_nb, cwd, **params):
    args = [sys.executable, '-m', 'papermill', str(NB), str(out_nb), '--no-progress-bar']
    if cwd != ROOT: args += ['--cwd', str(cwd)]
    for k, v in params.items(): args += ['-p', k, str(v)]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)


COMMON = dict(scale='smoke', epochs=1, finetune_epochs=1, seed=0)
NAME = 'tiny_smoke_solo_cutmix_seed0.json'


def entry_point(runs, data_root, data, timeout=900):
    "`python -m cmmixer.experiment run` from the project root with COMMON's settings."
    args = [str(x) for k, v in dict(COMMON, data=data).items() for x in (f'--{k}', v)]
    return subprocess.run([sys.executable, '-m', 'cmmixer.experiment', 'run', '--quiet', '--runs', runs,
                           '--data_root', data_root, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def entry_record(tiny_data, tmp_path_factory):
    "The record of one small experiment run by the entry point from the project root: (record path, data_root)."
    tmp = tmp_path_factory.mktemp('entry')
    p = entry_point(tmp / 'a', tmp / 'data', tiny_data)
    assert p.returncode == 0, p.stderr[-3000:]
    return tmp / 'a' / 'records' / 'table1' / NAME, tmp / 'data'


def test_entry_point_record_and_reuse(entry_record, tiny_data):
    "The entry point writes a record of the run; run again, the record is returned as it is, not rewritten."
    rec, data_root = entry_record
    a = json.loads(rec.read_text())
    assert a['experiment']['data'] == str(tiny_data.resolve()) and a['finetune_steps'] > 0 and a['wall_s'] > 0
    mtime = rec.stat().st_mtime_ns
    p = entry_point(rec.parents[2], data_root, tiny_data, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith('reused') and rec.stat().st_mtime_ns == mtime, p.stdout + p.stderr


def test_papermill_in_nbs_gives_the_same_record(entry_record, tiny_data, tmp_path):
    "papermill with `--cwd nbs` (a JupyterLab kernel's working directory) and runs/ relative to the project root."
    rec, data_root = entry_record
    before = git_status('nbs', 'results')
    rel = Path('runs') / f'test-{uuid.uuid4().hex[:8]}'
    try:
        p = papermill(tmp_path / 'c.ipynb', ROOT / 'nbs', runs=rel, data_root=data_root, data=tiny_data, **COMMON)
        assert p.returncode == 0, p.stderr[-3000:]
        assert not (ROOT / 'nbs' / rel).exists() and (ROOT / rel / 'records' / 'table1' / NAME).is_file()
        c = json.loads((ROOT / rel / 'records' / 'table1' / NAME).read_text())
    finally: shutil.rmtree(ROOT / rel, ignore_errors=True)
    a = json.loads(rec.read_text())
    assert comparable(a) == comparable(c), diff(comparable(a), comparable(c))
    for d in ('data', 'runs', 'results'): assert not (ROOT / 'nbs' / d).exists(), d
    assert git_status('nbs', 'results') == before                      # nothing new under nbs/, results/ untouched


@pytest.mark.slow
def test_papermill_from_the_root_gives_the_same_record(entry_record, tiny_data, tmp_path):
    "papermill from the project root: the same record, and the chapter's outputs stay small (labelled bars, no logs)."
    rec, data_root = entry_record
    p = papermill(tmp_path / 'b.ipynb', ROOT, runs=tmp_path / 'b', data_root=data_root, data=tiny_data, **COMMON)
    assert p.returncode == 0, p.stderr[-3000:]
    b = json.loads((tmp_path / 'b' / 'records' / 'table1' / NAME).read_text())
    nb = json.loads((tmp_path / 'b.ipynb').read_text())
    outputs = sum(len(json.dumps(c.get('outputs', []))) for c in nb['cells'])
    assert outputs < 100_000, outputs
    a = json.loads(rec.read_text())
    assert comparable(a) == comparable(b), diff(comparable(a), comparable(b))


BAD = [(('--scale', 'huge'), 'scale:'), (('--epochs', '-3'), 'epochs:'), (('--mixer', 'bogus'), 'mixer:'),
       (('--device', 'tpu'), 'device:')]
if not torch.cuda.is_available(): BAD.append((('--scale', 'paper'), "device: scale 'paper'"))


@pytest.mark.parametrize('args,msg', BAD)
def test_entry_point_refuses_in_seconds(args, msg, tmp_path):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, '-m', 'cmmixer.experiment', 'run', '--runs', tmp_path / 'r', '--data_root', tmp_path / 'd',
                        *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().startswith(f'error: {msg}'), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and time.perf_counter() - t0 < 30
    assert not (tmp_path / 'r').exists() and not (tmp_path / 'd').exists()


CHAPTER_BAD = [('scale', 'huge', 'scale:')] + [pytest.param(*b, marks=pytest.mark.slow) for b in   # one in the fast tier
               [('epochs', -3, 'epochs:'), ('mixer', 'bogus', 'mixer:')]
               + ([('scale', 'paper', 'device:')] if not torch.cuda.is_available() else [])]


@pytest.mark.parametrize('name,value,msg', CHAPTER_BAD)
def test_chapter_refuses_before_its_tests(name, value, msg, tmp_path):
    "The retrieval chapter fails in the cell right after its parameters (before its test cells), naming the parameter."
    p = papermill(tmp_path / 'out.ipynb', ROOT, **{name: value, 'runs': tmp_path / 'r', 'data_root': tmp_path / 'd'})
    assert p.returncode != 0
    nb = json.loads((tmp_path / 'out.ipynb').read_text())
    code = [c for c in nb['cells'] if c['cell_type'] == 'code']
    failed = [i for i, c in enumerate(code) if any(o.get('output_type') == 'error' for o in c.get('outputs', []))]
    params = next(i for i, c in enumerate(code) if 'parameters' in c.get('metadata', {}).get('tags', []))
    assert len(failed) == 1 and failed[0] <= params + 2, (failed, params)    # after the injected parameters cell
    err = next(o for o in code[failed[0]]['outputs'] if o.get('output_type') == 'error')
    assert err['evalue'].startswith(msg), err['evalue']
    assert not (tmp_path / 'r').exists() and not (tmp_path / 'd').exists()


def _children(pid):
    "The pids whose parent is `pid` (Linux /proc)."
    out = []
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: ppid = int((d / 'stat').read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        if ppid == pid: out.append(int(d.name))
    return out


def _alive(pid):
    try: return (Path('/proc') / str(pid) / 'stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError: return False


@pytest.mark.skipif(not Path('/proc').is_dir(), reason='needs Linux /proc')
def test_killed_papermill_leaves_no_process(tmp_path):
    "Kill papermill (SIGKILL) while its kernel's worker pool generates data: the kernel and the workers go too."
    import signal
    pm = subprocess.Popen([sys.executable, '-m', 'papermill', str(NB), str(tmp_path / 'out.ipynb'), '--no-progress-bar',
                           '-p', 'scale', 'smoke', '-p', 'runs', str(tmp_path / 'runs'), '-p', 'data_root', str(tmp_path / 'data')],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, tree = time.time() + 180, []
    while time.time() < deadline:                                   # the kernel, and its pool's workers at work
        kernels = _children(pm.pid)
        workers = [w for k in kernels for w in _children(k)]
        if len(workers) >= 2: tree = kernels + workers + [x for w in workers for x in _children(w)]; break
        time.sleep(0.5)
    assert tree, 'no worker pool seen'
    pm.send_signal(signal.SIGKILL); pm.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in tree): time.sleep(0.5)
    assert not [p for p in tree if _alive(p)]


@pytest.mark.slow
def test_transfer_through_the_entry_point(tmp_path):
    "`python -m cmmixer.experiment run --table transfer --method k400` at the gpu-tiny size, then `gather --table transfer`."
    args = [sys.executable, '-m', 'cmmixer.experiment', 'run', '--table', 'transfer', '--method', 'k400', '--init', 'random',
            '--scale', 'gpu-tiny', '--finetune_epochs', '1', '--runs', str(tmp_path / 'runs'), '--data_root', str(tmp_path / 'data'), '--quiet']
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and 'k400 top-1' in p.stdout and 'chance' in p.stdout, (p.stdout[-1500:], p.stderr[-3000:])
    rec = json.loads((tmp_path / 'runs' / 'records' / 'transfer' / 'synth_gpu-tiny_k400_random-init_seed0.json').read_text())
    assert rec['task'] == 'k400' and rec['splits'].keys() == {'test'} and rec['classes'] >= 2 and rec['finetune_steps'] > 0
    assert (Path(rec['cache']) / 'manifest.csv').is_file() and 'kinetics' in json.loads((Path(rec['cache']) / 'meta.json').read_text())['kind']
    single = [a if a != 'random' else 'single-mae' for a in args]          # the frame MAE of Table 2's ablation as the start
    p = subprocess.run(single, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout[-1500:], p.stderr[-3000:])
    rec = json.loads((tmp_path / 'runs' / 'records' / 'transfer' / 'synth_gpu-tiny_k400_single-mae_seed0.json').read_text())
    assert rec['start']['single_modality'] == 'video' and 'frame-mae' in rec['start']['pretrain']
    g = subprocess.run([CMMIXER, 'run', 'table4', '--scale', 'gpu-tiny', '--gather_only',
                        '--runs', str(tmp_path / 'runs'), '--results', str(tmp_path / 'results')], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert g.returncode == 0, g.stderr[-2000:]
    import pandas as pd
    t = pd.read_csv(tmp_path / 'results' / 'table4_synth_gpu-tiny.csv')
    assert sorted(t.start) == ['random init', 'single-modality MAE'] and {'score_mean', 'chance', 'handcrafted', 'paper'} <= set(t.columns)


@pytest.mark.slow
def test_youtube8m_style_synthm2m_end_to_end(tmp_path):
    """Table 1's driver on the YouTube-8M-style SynthM2M (`--data synth-yt8m`, gpu-tiny size): the videos in the YouTube-8M
    layout, each paired with its own sound; pre-training, fine-tuning, random init, CCA and the oracle on the same pools."""
    import pandas as pd
    args = [CMMIXER, 'run', 'table1', '--scale', 'gpu-tiny', '--data', 'synth-yt8m', '--variants',
            'solo:cutmix', '--seeds', '1', '--no_probes', '--inline', '--workers', '2', '--runs', str(tmp_path / 'runs'),
            '--results', str(tmp_path / 'results'), '--data_root', str(tmp_path / 'data')]
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    recs = tmp_path / 'runs' / 'records' / 'table1'
    assert sorted(f.name for f in recs.glob('*.json')) == ['synth-yt8m_gpu-tiny_random-init_seed0.json', 'synth-yt8m_gpu-tiny_references.json',
                                                         'synth-yt8m_gpu-tiny_solo_cutmix_seed0.json']
    rec = json.loads((recs / 'synth-yt8m_gpu-tiny_solo_cutmix_seed0.json').read_text())
    meta = json.loads((Path(rec['cache']) / 'meta.json').read_text())
    assert meta['kind'] == 'yt8m' and rec['v2m']['N'] == rec['m2v']['N']            # every video is its own track
    synth = json.loads((tmp_path / 'data' / 'synthm2m_gpu-tiny_yt8m_seed0' / 'synth.json').read_text())
    assert sum(v['kind'] == 'natural' for v in synth['videos'].values()) == 48       # 80 % of 60 videos carry natural sound
    refs = pd.read_csv(tmp_path / 'results' / 'gpu_tiny_synth-yt8m_references.csv').set_index('method')
    assert {'oracle', 'CCA, full resolution', "CCA, the model's inputs", 'no pre-training'} <= set(refs.index)
    assert refs.loc['oracle', 'v2m_R@1_mean'] > refs.loc['chance', 'v2m_R@1_mean']

"""The GPU benchmark runs end to end on the CPU at a tiny size and writes its table (the GPU run uses the same code)."""
import subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_tiny_on_cpu(tmp_path):
    out = tmp_path / 'gpu.md'
    p = subprocess.run([sys.executable, 'benchmarks/gpu.py', '--tiny', '--no-compile', '--budget', '900', '--out', str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    md = out.read_text()
    for part in ('pre-train CMMixer-Solo eager', 'pre-train CMMixer-Duet eager', 'data loader', 'retrieval fine-tuning step'):
        assert f'| {part}' in md, (part, md)
    assert 'Skipped' not in md and 'matmul rate' in md and 'batch 4 per device' in md
    rows = [l.split('|') for l in md.splitlines() if l.startswith('| pre-train') or l.startswith('| data loader')]
    assert all(float(r[4]) > 0 for r in rows), rows                   # samples/s measured, not left blank


@pytest.mark.slow
def test_gpu_small_command_tiny_on_cpu(tmp_path):
    """`make gpu-small` at the gpu-tiny size: data generated and prepared, CutMix-Solo pre-trained and fine-tuned, the
    random-init run and the references on the same pools, the tables and the verdict; run again, it resumes."""
    import json, pandas as pd
    cmd = ['make', '-s', 'gpu-small', 'GPU_SMALL_SCALE=gpu-tiny', f'GPU_ARGS=--runs {tmp_path}/runs --results {tmp_path}/results --data_root {tmp_path}/data --workers 2']
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    recs = tmp_path / 'runs' / 'records' / 'table1'
    names = sorted(f.name for f in recs.glob('*.json'))
    assert names == ['synth_gpu-tiny_random-init_seed0.json', 'synth_gpu-tiny_references.json', 'synth_gpu-tiny_solo_cutmix_seed0.json'], names
    rec = json.loads((recs / 'synth_gpu-tiny_solo_cutmix_seed0.json').read_text())
    assert rec['experiment']['scale'] == 'gpu-tiny' and rec['pretrain_run'] and rec['finetune_steps'] > 0
    assert rec['mae']['clips'] == 2 and rec['finetune']['lr'] == 2e-4            # gpu-small's fine-tuning recipe
    refs = pd.read_csv(tmp_path / 'results' / 'gpu_tiny_synth_references.csv').method.tolist()
    for m in ('chance', 'no pre-training', 'CCA, full resolution', "CCA, the model's inputs", 'oracle'): assert m in refs, refs
    t = pd.read_csv(tmp_path / 'results' / 'gpu_tiny_synth.csv')
    assert len(t) == 1 and t.decoder[0] == 'solo' and t.mixer[0] == 'cutmix' and (tmp_path / 'results' / 'gpu_tiny_synth.png').stat().st_size
    assert 'verdict (gpu-tiny scale' in p.stdout and 'single draws' in p.stdout
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and 'table1: ran 0, reused 2, restored 0;' in again.stdout, again.stdout[-2000:]

"""The GPU benchmark runs end to end on the CPU at a tiny size and writes its table (the GPU run uses the same code)."""
import subprocess, sys
from pathlib import Path

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

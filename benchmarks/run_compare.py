"""One CPU-scale record, old code against new, side by side: the same CutMix-Solo record of Table 1 (pre-train,
fine-tune, evaluate on test and val) from the same prepared cache, run by each commit's code in a fresh process and a
fresh runs folder, alternately, `--repeats` times; prints the medians, their ratio and each run's metrics.

    python benchmarks/run_compare.py --base 6c837d5              # 3 alternations at 1 thread (as make table1 runs)
    python benchmarks/run_compare.py --base 6c837d5 --threads 2 --repeats 1

The base commit's package is exported with `git archive` into runs/bench/src_<base>/ and imported from there; the new
code is this checkout. Times are whole processes (imports included). Writes benchmarks/run_compare_cpu.md.
"""
import argparse, json, platform, shutil, statistics, subprocess, sys, time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import json, sys, torch
from cmmixer.experiment import Experiment, run
exp = Experiment('table1', 'cmmixer', 'solo', 'cutmix', scale=sys.argv[1], data='synth', seed=int(sys.argv[2]))
rec = run(exp, runs=sys.argv[3], data_root=sys.argv[4], threads=int(sys.argv[5]), progress=False)
print(json.dumps(dict(times=rec['times'], test={d: rec[d] for d in ('v2m', 'm2v')}, val=rec['val'])))
"""


def export_commit(rev: str) -> Path:
    "The package of commit `rev` (with its settings.ini, so its paths resolve there) under runs/bench/src_<rev>/."
    out = ROOT / 'runs' / 'bench' / f"src_{rev}"
    if not (out / 'cmmixer' / '__init__.py').exists():
        out.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(['git', '-C', str(ROOT), 'archive', rev, 'cmmixer', 'settings.ini'], check=True,
                             capture_output=True).stdout
        subprocess.run(['tar', '-x', '-C', str(out)], input=tar, check=True)
    return out


def one_run(src: Path, label: str, i: int, args) -> dict:
    runs = ROOT / 'runs' / 'bench' / f"runs_{label}_{i}"
    shutil.rmtree(runs, ignore_errors=True)
    env = dict(__import__('os').environ, PYTHONPATH=str(src))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, '-c', RUN, args.scale, str(args.seed), str(runs), str(args.data), str(args.threads)],
                       env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode: raise SystemExit(f"{label} run {i} failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    shutil.rmtree(runs, ignore_errors=True)
    row = dict(code=label, run=i, wall_s=wall, **{k: v for k, v in out['times'].items()})
    for split, res in (('test', out['test']), ('val', out['val'])):
        for d in ('v2m', 'm2v'):
            row[f"{split}_{d}_MedR"], row[f"{split}_{d}_R@10"] = res[d]['MedR'], res[d]['R@10']
    print(f"{label} run {i}: {wall:.1f} s", flush=True)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--base', default='6c837d5', help='the commit to compare against')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--scale', default='cpu')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--data', default=str(ROOT / 'data'))
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'run_compare_cpu.md'))
    args = p.parse_args(argv)
    head = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(['git', '-C', str(ROOT), 'status', '--porcelain', '--', 'cmmixer'],
                                capture_output=True, text=True).stdout.strip())
    new = f"{head}{'+changes' if dirty else ''}"
    from cmmixer.pretrain import ensure_cache
    ensure_cache('synth', args.scale, root=Path(args.data), workers=2)          # prepared once, outside the timing
    codes = [(args.base, export_commit(args.base)), (new, ROOT)]
    rows = [one_run(src, label, i, args) for i in range(args.repeats) for label, src in codes]
    df = pd.DataFrame(rows)
    med = df.groupby('code', sort=False)[['wall_s', 'pretrain_s', 'finetune_s', 'evaluate_s', 'total_s']].median()
    ratio = med.loc[args.base] / med.loc[new]
    metric_cols = [c for c in df.columns if c.endswith('_MedR') or c.endswith('_R@10')]
    metrics_equal = len(df[metric_cols].drop_duplicates()) == 1
    text = '\n'.join([
        "# One CPU-scale record, before and after (side by side)", "",
        f"`python benchmarks/run_compare.py {' '.join(sys.argv[1:])}`", "",
        f"machine: {platform.machine()}, {__import__('os').cpu_count()} cores; python {platform.python_version()}; "
        f"scale {args.scale}, CutMix-Solo, seed {args.seed}, {args.threads} torch thread(s) per record; the records run "
        f"alternately ({args.base}, {new}) x {args.repeats}, each a fresh process and runs folder on the same cache; "
        "seconds are wall time (the process's; pretrain/finetune/evaluate from the record's own clock)", "",
        "```", df.to_string(index=False, float_format=lambda v: f"{v:.1f}"), "```", "",
        "medians:", "", "```", med.to_string(float_format=lambda v: f"{v:.1f}"), "```", "",
        f"ratio {args.base} / {new} (the speed-up): " + ', '.join(f"{k} {v:.2f}x" for k, v in ratio.items()), "",
        "metrics (test and val MedR and R@10, both directions) identical across every run of both codes: "
        f"{'yes' if metrics_equal else 'NO'}", ""])
    print(text)
    Path(args.out).write_text(text)


if __name__ == '__main__':
    main()

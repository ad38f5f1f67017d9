"""Regenerate Table 1 of the CMMixer paper: the six variants (Solo/Duet x CutMix/Pixel Mixup/Mixup) over seeds.

Each (variant, seed) runs nbs/04_retrieval.ipynb with papermill (pre-train or reuse, fine-tune, evaluate on the
held-out pool) and leaves results/retrieval/<data>_<scale>_<decoder>_<mixer>_seed<S>.json; the runs go one after
another on the same data (one SynthM2M for all seeds: the seed changes training only). A finished run's JSON is
kept unless --force. The gather step writes results/table1_<data>_<scale>.csv (mean and std over seeds, chance,
the paper's number) and .png (ours beside the paper's).

    python tools/table1.py                                  # smoke scale on SynthM2M, 3 seeds (make table1)
    python tools/table1.py --scale paper --seeds 3          # GPU
    python tools/table1.py --variants solo:cutmix --seeds 1 # one cell
    python tools/table1.py --gather-only                    # just rebuild the CSV and PNG from the JSONs
"""
import argparse, json, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmmixer.retrieval import (result_path, write_table1, table1_text, check_experiment, run_experiment,
                               PAPER_TABLE1_SOURCE)
from cmmixer.mixer import MIXERS
from cmmixer.mae import DECODERS

VARIANTS = [(d, m) for d in DECODERS for m in MIXERS]


def parse_variants(s):
    if s in (None, '', 'all'): return VARIANTS
    out = []
    for v in s.split(','):
        d, _, m = v.partition(':')
        if (d, m) not in VARIANTS: raise SystemExit(f"--variants: {v!r} is not decoder:mixer with decoder in {DECODERS}, mixer in {MIXERS}")
        out.append((d, m))
    return out


def run_one(decoder, mixer, seed, a, nb_out):
    "One papermill execution of the retrieval chapter; returns its wall time."
    import papermill as pm
    params = dict(mixer=mixer, decoder=decoder, scale=a.scale, data=a.data, pool_size=a.pool_size, seed=seed,
                  epochs=a.epochs, finetune_epochs=a.finetune_epochs, out=a.out)
    nb_out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if a.inline:      # same code path without papermill (no kernel start): for quick checks
        import os; os.chdir(a.work)
        run_experiment(mixer=mixer, decoder=decoder, scale=a.scale, data=a.data, pool_size=a.pool_size, seed=seed,
                       epochs=a.epochs, finetune_epochs=a.finetune_epochs, out=a.out, progress=False)
    else:
        pm.execute_notebook(str(ROOT / 'nbs' / '04_retrieval.ipynb'), str(nb_out), parameters=params, cwd=str(a.work),
                            kernel_name='python3', progress_bar=False, log_output=False)
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='synth', help="'synth' (SynthM2M, generated) or a dataset folder")
    p.add_argument('--scale', default='smoke', choices=['smoke', 'paper'])
    p.add_argument('--seeds', type=int, default=3, help='training seeds 0..N-1 per variant')
    p.add_argument('--pool_size', type=int, default=2000, help='N, candidates per query')
    p.add_argument('--epochs', type=int, default=None, help="pre-training epochs (default: the scale's)")
    p.add_argument('--finetune_epochs', type=int, default=None, help="fine-tuning epochs (default: the scale's)")
    p.add_argument('--variants', default='all', help="comma-separated decoder:mixer, e.g. solo:cutmix,duet:mixup")
    p.add_argument('--out', default='results/retrieval', help='folder of the per-run JSONs (relative to the repo)')
    p.add_argument('--results', default='results', help='folder of the table CSV and PNG (relative to the repo)')
    p.add_argument('--force', action='store_true', help='rerun runs whose JSON exists')
    p.add_argument('--gather-only', action='store_true', help='only gather the existing JSONs')
    p.add_argument('--inline', action='store_true', help='call run_experiment in this process instead of papermill')
    p.add_argument('--workdir', default=str(ROOT), help='where data/, runs/ and the relative --out/--results go (default: the repo)')
    a = p.parse_args(argv)
    work = Path(a.workdir).absolute()
    if a.data != 'synth': a.data = str(Path(a.data).absolute())
    variants = parse_variants(a.variants)
    if a.seeds < 1: raise SystemExit("--seeds: must be >= 1")
    try:
        for d, m in variants: check_experiment(m, d, a.scale, a.data, a.pool_size, 0, a.epochs, a.finetune_epochs)
    except ValueError as e: raise SystemExit(f"table1: {e}")
    out = work / a.out
    a.out, a.work = str(out), work
    t0 = time.perf_counter()
    if not a.gather_only:
        jobs = [(d, m, s) for d, m in variants for s in range(a.seeds)]
        for i, (d, m, s) in enumerate(jobs, 1):
            res = result_path(out, a.data, a.scale, d, m, s)
            if res.exists() and not a.force:
                print(f"[{i}/{len(jobs)}] {res.name}: exists, kept"); continue
            nb = work / 'runs' / 'table1' / (res.stem + '.ipynb')   # executed notebooks: not results
            w = run_one(d, m, s, a, nb)
            r = json.loads(res.read_text())
            print(f"[{i}/{len(jobs)}] {res.name}: {w:.1f} s (run {r['times']['total_s']:.1f} s)  "
                  f"V→M R@1 {r['v2m']['R@1']:.1f} MedR {r['v2m']['MedR']:g} (chance {r['chance_v2m']['R@1']:.1f}, N {r['v2m']['N']})  "
                  f"M→V R@1 {r['m2v']['R@1']:.1f} MedR {r['m2v']['MedR']:g} (chance {r['chance_m2v']['R@1']:.1f}, N {r['m2v']['N']})",
                  flush=True)
    w = write_table1(out, a.data, a.scale, results=work / a.results)
    import pandas as pd
    with pd.option_context('display.width', 250, 'display.max_columns', 20):
        print(table1_text(w['table']).to_string(index=False))
    print(f"paper: {PAPER_TABLE1_SOURCE}")
    print(f"wrote {w['csv']} and {w['png']}; wall time {time.perf_counter() - t0:.1f} s")


if __name__ == '__main__':
    main()

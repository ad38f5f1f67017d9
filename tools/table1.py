"""Regenerate Table 1 of the CMMixer paper: the six variants (Solo/Duet x CutMix/Pixel Mixup/Mixup) over seeds.

Each (variant, seed) is one `cmmixer.experiment.Experiment`, run by executing nbs/04_retrieval.ipynb with papermill
(pre-train or reuse, fine-tune, evaluate on the held-out pool and on the val split); its record goes to
runs/records/table1/<data>_<scale>_<decoder>_<mixer>_seed<S>.json, all on the same data (one SynthM2M for all seeds:
the seed changes training only), which is prepared once before the runs start. Two runs go at a time on a
multi-core CPU (--jobs; each uses one CPU thread). A finished run's record is kept unless --force. Unless
--no-baselines, the same fine-tuning from a randomly initialised encoder runs for each seed
(<data>_<scale>_random-init_seed<S>.json: does pre-training help?), the frozen-encoder probes run, and on SynthM2M the
CCA baselines and the oracle are measured on the same pools (<data>_<scale>_references.json). The gather step
(`cmmixer.experiment.write_table1`) writes results/table1_<data>_<scale>.csv (mean and std over seeds, chance, the
paper's number), .png, _references.csv, _val.csv and _track_scoring.csv, and copies the records to results/retrieval/.

    python tools/table1.py                                  # smoke scale on SynthM2M, 3 seeds (make table1)
    python tools/table1.py --scale paper --seeds 3          # GPU
    python tools/table1.py --variants solo:cutmix --seeds 1 # one cell
    python tools/table1.py --gather-only                    # just rebuild the CSVs and PNG from the JSONs
    python tools/table1.py --scale gpu-small --variants solo:cutmix --seeds 1 --no-probes --verdict   # make gpu-small

At the GPU-small scale (`make gpu-small`, one GPU) the tables are results/gpu_small_<data>*.csv and .png.
"""
import argparse, json, os, sys, time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cmmixer.experiment import (Experiment, run, record_path, records_dir, write_table1, table1_text, references_text,
                                write_references, references_path, write_data_efficiency, full_resolution_cache, INITS,
                                GPU_SCALES, table_stem, check_device)
from cmmixer.paper import PAPER_TABLE1_SOURCE
from cmmixer.pretrain import SCALES, SYNTH_DATA
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


def run_one(exp, a, nb_out):
    "One papermill execution of the retrieval chapter for `exp`; returns its wall time."
    params = {k: v for k, v in exp.to_dict().items() if k not in ('table', 'method')}
    params.update(runs=str(a.runs), data_root=str(a.work / 'data'), force=bool(a.force), device=a.device)
    nb_out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if a.inline:      # same code path without papermill (no kernel start): for quick checks
        run(exp, runs=a.runs, data_root=a.work / 'data', device=a.device, workers=a.workers, progress=False, force=a.force)
    else:
        import papermill as pm                            # not needed inline (a bare GPU machine has none)
        pm.execute_notebook(str(ROOT / 'nbs' / '04_retrieval.ipynb'), str(nb_out), parameters=params, cwd=str(ROOT / 'nbs'),
                            kernel_name='python3', progress_bar=False, log_output=False)
    return time.perf_counter() - t


def verdict_line(t, refs, committed, data, scale):
    """One line in numbers: CutMix-Solo against random init and against CCA (full resolution and on the model's
    inputs). The spread is the std over seeds of this run's table, or of the committed Table 1 when it has 1 seed."""
    import pandas as pd
    row = t[(t.decoder == 'solo') & (t.mixer == 'cutmix')].iloc[0]
    ref = refs.set_index('method')
    spread_src = f'{int(row.seeds)} seed(s) of this run'
    sd = {m: float(row[f'{m}_std']) for m in ('v2m_MedR', 'm2v_MedR', 'v2m_R@10', 'm2v_R@10')}
    rsd = {m: float(ref.loc['no pre-training', f'{m}_std']) if 'no pre-training' in ref.index else float('nan') for m in sd}
    p = Path(committed) / f"{table_stem(data, scale)}.csv"
    pr = Path(committed) / f"{table_stem(data, scale)}_references.csv"
    seeds = int(row.seeds)
    if seeds < 2 and p.is_file() and pr.is_file():
        c = pd.read_csv(p); c = c[(c.decoder == 'solo') & (c.mixer == 'cutmix')].iloc[0]
        seeds = int(c.seeds)
        cr = pd.read_csv(pr).set_index('method')
        sd = {m: float(c[f'{m}_std']) for m in sd}
        rsd = {m: float(cr.loc['no pre-training', f'{m}_std']) if 'no pre-training' in cr.index else float('nan') for m in sd}
        spread_src = f'{int(c.seeds)} seeds of {p.name}'
    def judge(gap, s2):                                   # gap > 0: CutMix-Solo better (lower MedR)
        if seeds < 2: return 'better' if gap > 0 else 'worse' if gap < 0 else 'equal'
        return 'better' if gap > s2 else 'worse' if -gap > s2 else 'within 2σ'
    if seeds < 2: spread_src += ': no spread, so better/worse are single draws, not tested differences'
    parts = []
    for d, name in (('v2m', 'V→M'), ('m2v', 'M→V')):
        m = f'{d}_MedR'; ours = float(row[f'{m}_mean'])
        txt = f"{name} MedR {ours:.1f} ± {sd[m]:.1f}"
        if 'no pre-training' in ref.index:
            rnd = float(ref.loc['no pre-training', f'{m}_mean']); gap = rnd - ours
            s2 = 2 * (sd[m] ** 2 + rsd[m] ** 2) ** 0.5
            txt += f" vs random init {rnd:.1f} ± {rsd[m]:.1f} ({judge(gap, s2)})"
        for key, lab in (("CCA, the model's inputs", 'CCA on its inputs'), ('CCA, full resolution', 'CCA full-res')):
            if key in ref.index:
                cc = float(ref.loc[key, f'{m}_mean'])
                txt += f", {lab} {cc:.1f} ({judge(cc - ours, 2 * sd[m])})"
        parts.append(txt)
    return f"verdict ({scale} scale, CutMix-Solo, lower MedR is better; spread: std over {spread_src}): " + '; '.join(parts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default='synth', help="'synth' (SynthM2M, generated), 'synth-yt8m' (its YouTube-8M-style variant) or a dataset folder")
    p.add_argument('--scale', default='cpu', choices=SCALES)
    p.add_argument('--device', default='auto', help="'auto' (a GPU when there is one), 'cpu' or 'cuda'")
    p.add_argument('--workers', type=int, default=None, help='processes that generate and prepare the data (default: 2; every core at a GPU scale)')
    p.add_argument('--seeds', type=int, default=3, help='training seeds 0..N-1 per variant')
    p.add_argument('--pool_size', type=int, default=2000, help='N, candidates per query')
    p.add_argument('--epochs', type=int, default=None, help="pre-training epochs (default: the scale's)")
    p.add_argument('--finetune_epochs', type=int, default=None, help="fine-tuning epochs (default: the scale's)")
    p.add_argument('--variants', default='all', help="comma-separated decoder:mixer, e.g. solo:cutmix,duet:mixup")
    p.add_argument('--runs', default='runs', help='folder of the records, pre-training and fine-tuning runs (relative to --workdir)')
    p.add_argument('--results', default='results', help='folder of the tables, figures and copied records (relative to --workdir)')
    p.add_argument('--force', action='store_true', help='rerun runs whose record exists')
    p.add_argument('--jobs', type=int, default=None, help='runs at a time (default: 2 at smoke scale on a multi-core CPU, else 1)')
    p.add_argument('--no-baselines', action='store_true', help='skip the random-init runs, the probes and the CCA/oracle references')
    p.add_argument('--data-efficiency', default=None, metavar='FRACTIONS',
                   help="instead of Table 1: CutMix-Solo and random init fine-tuned on these shares of the train pairs, "
                        "e.g. 0.1,0.25,0.5,1 -> results/data_efficiency_<data>_<scale>.csv and .png")
    p.add_argument('--gather-only', action='store_true', help='only gather the existing JSONs')
    p.add_argument('--inline', action='store_true', help='call cmmixer.experiment.run in this process instead of papermill')
    p.add_argument('--no-probes', action='store_true', help='skip the frozen-encoder probes (keep the other references)')
    p.add_argument('--no-full-res', action='store_true', help='skip CCA at full resolution (it prepares a second cache)')
    p.add_argument('--verdict', action='store_true', help='end with one line: CutMix-Solo against random init and CCA')
    p.add_argument('--workdir', default=str(ROOT), help='where data/, runs/ and a relative --results go (default: the project root)')
    a = p.parse_args(argv)
    work = Path(a.workdir).absolute()
    if a.data not in SYNTH_DATA: a.data = str(Path(a.data).absolute())
    variants = parse_variants(a.variants)
    if a.seeds < 1: raise SystemExit("--seeds: must be >= 1")
    jobs_n = a.jobs if a.jobs is not None else (2 if a.scale in ('smoke', 'cpu') and (os.cpu_count() or 1) >= 2 else 1)
    if jobs_n < 1: raise SystemExit("--jobs: must be >= 1")
    if a.workers is None: a.workers = max(1, os.cpu_count() or 1) if a.scale in GPU_SCALES else 2
    if a.workers < 1: raise SystemExit("--workers: must be >= 1")
    try: check_device(a.scale, a.device)
    except ValueError as e: raise SystemExit(f"table1: {e}")
    if a.inline: jobs_n = 1                                  # in-process runs share torch's thread settings
    def exp(d, m, s, init='pretrained', f=None, probe=False):
        return Experiment(table='table1', method='cmmixer', decoder=d, mixer=m, init=init, scale=a.scale, data=a.data, seed=s,
                          fraction=f, probe=probe, epochs=a.epochs, finetune_epochs=a.finetune_epochs, pool_size=a.pool_size)
    try:
        fractions = [float(f) for f in a.data_efficiency.split(',')] if a.data_efficiency else []
        for d, m in variants: exp(d, m, 0)
        for f in fractions: exp('solo', 'cutmix', 0, f=f)
    except ValueError as e: raise SystemExit(f"table1: {e}")
    a.work, a.runs = work, work / a.runs
    out = records_dir('table1', a.runs)
    t0 = time.perf_counter()
    if not a.gather_only:
        if fractions:                                        # the data-efficiency figure: both inits at every share
            jobs = [exp('solo', 'cutmix', s, init, f) for f in fractions for s in range(a.seeds) for init in INITS]
        else:
            jobs = [exp(d, m, s) for d, m in variants for s in range(a.seeds)]
            if not a.no_baselines:
                jobs += [exp('solo', 'cutmix', s, 'random') for s in range(a.seeds)]
                if not a.no_probes: jobs += [exp('solo', 'cutmix', s, init, probe=True) for s in range(a.seeds) for init in INITS]
        todo, n = [], len(jobs)
        for i, e in enumerate(jobs, 1):
            res = record_path(e, a.runs)
            if res.exists() and not a.force: print(f"[{i}/{n}] {res.name}: exists, kept")
            else: todo.append((i, e, res))
        cache = None
        if todo or not a.no_baselines:                       # the data once, before parallel runs could race for it
            from cmmixer.pretrain import ensure_cache, scale_config
            t = time.perf_counter()
            cache = ensure_cache(a.data, scale_config(a.scale), root=work / 'data', workers=a.workers, progress=True)
            print(f"data: {cache} ready in {time.perf_counter() - t:.1f} s", flush=True)

        def one(i, e, res):
            nb = a.runs / 'notebooks' / 'table1' / (res.stem + '.ipynb')   # executed notebooks: not results
            return i, res, run_one(e, a, nb)

        def references():                                    # CCA three ways and the oracle, on the runs' pools
            t = time.perf_counter()
            sc = scale_config(a.scale)
            full = full_resolution_cache(cache, work / 'data', workers=a.workers) if a.data in SYNTH_DATA and not a.no_full_res else None
            write_references(cache, out, a.data, a.scale, pool_size=a.pool_size, image_size=sc.image_size, full_cache=full)
            return time.perf_counter() - t
        refs_job = None
        with ThreadPoolExecutor(1) as side, ThreadPoolExecutor(jobs_n) as ex:
            if not a.no_baselines and not fractions and not references_path(out, a.data, a.scale).exists():
                refs_job = side.submit(references)           # alongside the runs (they leave a core idle at times)
            for f in as_completed([ex.submit(one, *j) for j in todo]):
                i, res, w = f.result()
                r = json.loads(res.read_text())
                print(f"[{i}/{n}] {res.name}: {w:.1f} s (run {r['times']['total_s']:.1f} s)  "
                      f"V→M R@1 {r['v2m']['R@1']:.1f} MedR {r['v2m']['MedR']:g} (chance {r['chance_v2m']['R@1']:.1f}, N {r['v2m']['N']})  "
                      f"M→V R@1 {r['m2v']['R@1']:.1f} MedR {r['m2v']['MedR']:g} (chance {r.get('chance_best_of_m2v', r['chance_m2v'])['R@1']:.1f}, N {r['m2v']['N']})",
                      flush=True)
            if refs_job is not None:
                try: print(f"references (CCA, oracle) measured in {refs_job.result():.1f} s", flush=True)
                except ValueError as e: print(f"references: skipped ({e})")
    if fractions:
        w = write_data_efficiency(out, a.data, a.scale, results=work / a.results)
        print(w['table'].to_string(index=False)); print(f"wrote {w['csv']}, {w['png']}; wall time {time.perf_counter() - t0:.1f} s")
        return
    w = write_table1(out, a.data, a.scale, results=work / a.results)
    import pandas as pd
    with pd.option_context('display.width', 250, 'display.max_columns', 20):
        print(table1_text(w['table']).to_string(index=False))
        if len(w['references']): print(references_text(w['references']).to_string(index=False))
    print(f"paper: {PAPER_TABLE1_SOURCE}")
    if a.verdict: print(verdict_line(w['table'], w['references'], work / 'results', a.data, a.scale))
    print(f"wrote {', '.join(str(v) for k, v in w.items() if k in ('csv', 'png', 'references_csv', 'val_csv'))}; "
          f"wall time {time.perf_counter() - t0:.1f} s")


if __name__ == '__main__':
    main()

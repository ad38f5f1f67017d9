"""Where the wall time of one CPU-scale record goes: one CutMix-Solo record of Table 1 (pre-train, fine-tune,
evaluate on test and val), from a prepared cache, then its references (CCA three ways, the oracle), with every
second attributed to one part.

    python benchmarks/run_profile.py                       # the cpu scale, seed 0, 1 thread (as make table1 runs it)
    python benchmarks/run_profile.py --threads 2 --label "after, 2 threads"
    PYTHONPATH=/path/to/other/checkout python benchmarks/run_profile.py --label before   # profile another commit's code

The parts are timed by wrapping the library's functions by name (a name a commit lacks is skipped): each second
counts once, in the innermost wrapped part that was running (exclusive time). The record runs in a fresh folder
under runs/profile/ (nothing reused) on the cache in data/ (prepared first, outside the timing, if missing).
Writes the table, with the machine's facts, as the section `--label` of benchmarks/run_profile_cpu.md.
"""
import argparse, importlib, platform, re, shutil, sys, time
from collections import defaultdict
from dataclasses import replace
from functools import wraps
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

# (part, module, attribute path): the functions whose time a part owns. Methods as 'Class.method'.
PARTS = [
    ('cache loading', 'cmmixer.pretrain', 'ensure_cache'),
    ('cache loading', 'cmmixer.cache', 'Cache.__init__'),
    ('cache loading', 'cmmixer.datasets', 'SplitInputs.load'),
    ('cache loading', 'cmmixer.cache', 'SplitInputs.load'),          # where it was before chapter 01c_datasets
    ('batch assembly (cache reads, augmentation, collate)', 'torch.utils.data._utils.fetch', '_MapDatasetFetcher.fetch'),
    ('batch assembly (cache reads, augmentation, collate)', 'cmmixer.train', 'to_device'),
    ('mixer + masking draws', 'cmmixer.mixer', 'CrossModalMixer.forward'),
    ('mixer + masking draws', 'cmmixer.randomness', 'StepGenerator.__init__'),
    ('mixer + masking draws', 'cmmixer.randomness', 'StepGenerator.rand_per_sample'),
    ('forward / backward / optimizer', 'cmmixer.train', 'train_step'),
    ('step log (host sync, JSON lines)', 'cmmixer.train', 'StepRecorder.flush'),
    ('checkpointing', 'cmmixer.train', 'save_run'),
    ('checkpointing', 'cmmixer.checkpoint', 'save_checkpoint'),
    ('checkpointing', 'cmmixer.pretrain', 'load_pretrained'),
    ('model construction', 'cmmixer.mae', 'CMMixerMAE.__init__'),
    ('model construction', 'cmmixer.retrieval', 'Retriever.from_pretrained'),
    ('pool embedding', 'cmmixer.retrieval', 'embed_split'),
    ('metrics (pools, scores, ranks)', 'cmmixer.retrieval', 'evaluate'),
    ('references (CCA, oracle)', 'cmmixer.experiment', 'write_references'),
]


class Timers:
    "Exclusive wall time per part: a part's clock pauses while a part nested inside it runs."
    def __init__(self):
        self.total, self.calls, self.stack = defaultdict(float), defaultdict(int), []

    def enter(self, part):
        now = time.perf_counter()
        if self.stack: self.total[self.stack[-1][0]] += now - self.stack[-1][1]
        self.stack.append([part, now])
        self.calls[part] += 1

    def leave(self):
        now = time.perf_counter()
        part, t0 = self.stack.pop()
        self.total[part] += now - t0
        if self.stack: self.stack[-1][1] = now


def timed(fn, part, timers):
    @wraps(fn)
    def inner(*args, **kw):
        timers.enter(part)
        try: return fn(*args, **kw)
        finally: timers.leave()
    return inner


def instrument(timers) -> list:
    "Wrap every function of PARTS that this code has; the list of the names it lacks."
    missing = []
    for part, mod, attr in PARTS:
        try: m = importlib.import_module(mod)
        except ImportError: missing.append(f"{mod}.{attr}"); continue
        *owner_path, name = attr.split('.')
        owner = m
        for o in owner_path: owner = getattr(owner, o, None)
        fn = getattr(owner, name, None) if owner is not None else None
        if fn is None: missing.append(f"{mod}.{attr}"); continue
        if isinstance(owner, type) and isinstance(owner.__dict__.get(name), classmethod):
            setattr(owner, name, classmethod(timed(fn.__func__, part, timers)))
            continue
        wrapped = timed(fn, part, timers)
        setattr(owner, name, wrapped)
        if owner is m:                                   # also where other modules imported the function by name
            for other in [v for k, v in sys.modules.items() if k.startswith('cmmixer') and v is not None]:
                if getattr(other, name, None) is fn: setattr(other, name, wrapped)
    return missing


def machine() -> str:
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                if l.startswith('model name')), platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    return f"{cpu}, {torch.get_num_threads()} torch threads of {__import__('os').cpu_count()} cores"


def profile(args) -> tuple:
    import cmmixer
    import cmmixer.experiment as ex
    import cmmixer.pretrain as pt
    from cmmixer.pretrain import ensure_cache
    if args.loader_workers:                              # an execution setting (EXECUTION_ONLY): the same record
        pt.CPU_PRETRAIN = replace(pt.CPU_PRETRAIN, num_workers=args.loader_workers)
        pt.CPU_FINETUNE = replace(pt.CPU_FINETUNE, num_workers=args.loader_workers)
    data = Path(args.data).resolve()
    cache = ensure_cache('synth', args.scale, root=data, workers=2)     # outside the timing: prepared once for every run
    runs = (ROOT / 'runs' / 'profile' / re.sub(r'\W+', '_', args.label)).resolve()
    shutil.rmtree(runs, ignore_errors=True)
    timers = Timers()
    missing = instrument(timers)
    exp = ex.Experiment('table1', 'cmmixer', 'solo', 'cutmix', scale=args.scale, data='synth', seed=args.seed)
    t0 = time.perf_counter()
    timers.enter('other (Python, setup)')
    rec = ex.run(exp, runs=runs, data_root=data, threads=args.threads, progress=False)
    t_record = time.perf_counter() - t0
    torch.set_num_threads(args.threads)
    ex.write_references(cache, runs / 'records', 'synth', args.scale)
    timers.leave()
    wall = time.perf_counter() - t0
    df = pd.DataFrame([dict(part=p, seconds=s, calls=timers.calls[p]) for p, s in timers.total.items()])
    df['share %'] = 100 * df.seconds / wall
    df = df.sort_values('seconds', ascending=False).reset_index(drop=True)
    df.loc[len(df)] = dict(part='total (record + references)', seconds=wall, calls=1, **{'share %': 100.0})
    info = dict(code=Path(cmmixer.__file__).parent.parent, record_s=t_record, wall=wall, missing=missing,
                val=rec['val'], test={d: rec[d] for d in ('v2m', 'm2v')}, times=rec.get('times'))
    return df, info


def section(args, df, info) -> str:
    fmt = dict(seconds='{:.1f}'.format, **{'share %': '{:.1f}'.format})
    metrics = '; '.join(f"{split} {d} MedR {r[d]['MedR']:g} R@10 {r[d]['R@10']:.2f}"
                        for split, r in (('test', info['test']), ('val', info['val'])) for d in ('v2m', 'm2v'))
    lines = [f"## {args.label}", "",
             f"`{' '.join(['python', 'benchmarks/run_profile.py'] + sys.argv[1:])}`", "",
             f"code: {info['code']} ({platform.python_version()}, torch {torch.__version__}); machine: {machine()}; "
             f"scale {args.scale}, CutMix-Solo, seed {args.seed}, {args.threads} thread(s), "
             f"{args.loader_workers} DataLoader worker(s); "
             f"record (pre-train + fine-tune + evaluation) {info['record_s']:.1f} s, with the references "
             f"{info['wall']:.1f} s; the record's own split: {info['times']}", "",
             "```", df.to_string(index=False, formatters=fmt), "```", "",
             f"metrics: {metrics}", ""]
    if info['missing']: lines += [f"not in this code (not timed): {', '.join(info['missing'])}", ""]
    return '\n'.join(lines)


def write_section(path: Path, label: str, text: str):
    "Replace (or append) the section headed `## label` of the markdown file `path`."
    head = "# Run profile (cpu): where the wall time of one CPU-scale record goes\n\n"
    old = path.read_text() if path.exists() else head
    parts = re.split(r'(?m)^(?=## )', old)
    keep = [p for p in parts if not p.startswith(f"## {label}\n")]
    path.write_text(''.join(keep).rstrip('\n') + '\n\n' + text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--scale', default='cpu')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--loader-workers', type=int, default=0, help="DataLoader worker processes (the cpu recipes' 0)")
    p.add_argument('--data', default=str(ROOT / 'data'), help='where the prepared caches live (shared by every code version)')
    p.add_argument('--label', default='after')
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'run_profile_cpu.md'))
    args = p.parse_args(argv)
    df, info = profile(args)
    text = section(args, df, info)
    print(text)
    write_section(Path(args.out), args.label, text)


if __name__ == '__main__':
    main()

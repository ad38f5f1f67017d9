"""Learning per CPU-minute: the val median rank that CutMix-Solo pre-training reaches in the CPU scale's own
pre-training time, for a few model widths and batch sizes (val split only; the test split is never read).

    python benchmarks/learning_per_minute.py                      # the configurations below, seed 0, 1 thread
    python benchmarks/learning_per_minute.py --configs w64,w128 --budget 90

Each configuration gets the same pre-training wall-clock budget (`--budget`, default: the time the `cpu` scale's
8 epochs take here, measured first): one epoch is timed in a throwaway run, then the run gets as many whole epochs as
fit the budget (at least 1), with the recipe's warm-up share and cosine schedule. Fine-tuning is the scale's recipe
(20 epochs on the same 25 % of the pairs), timed and reported but not budgeted: its cost grows with the width too.
Scored by the mean of val V->M and M->V median rank (lower is better) and by val R@10. bf16 autocast is not tried:
on this CPU it runs the step 2x slower than fp32 (benchmarks/pretrain_results_cpu.md).
Writes benchmarks/learning_per_minute_cpu.md.
"""
import argparse, platform, shutil, sys, time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

# name -> (description, scale overrides); lr follows the linear rule (lr x batch / 16) where the batch changes
CONFIGS = {
    'w64': ("width 64, 2 blocks, batch 16 (the cpu scale)", dict()),
    'w64b32': ("width 64, 2 blocks, batch 32, lr x2", dict(batch_size=32, lr=4e-3)),
    'w128': ("width 128, 2 blocks, batch 16", dict(embed_dim=128, num_heads=4)),
    'w192': ("width 192, 2 blocks, batch 16", dict(embed_dim=192, num_heads=6)),
    'w128d4': ("width 128, 4 blocks, batch 16", dict(embed_dim=128, num_heads=4, depth=4)),
}


def pretrain_timed(cache, scale, epochs, out, seed):
    from cmmixer.pretrain import pretrain, load_pretrained
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    run_dir = pretrain(cache, scale, epochs=epochs, seed=seed, out_dir=out, progress=False)
    return load_pretrained(run_dir), time.perf_counter() - t


def one_config(key, cache, budget, args) -> dict:
    from cmmixer.pretrain import scale_config
    from cmmixer.retrieval import Retriever, finetune, finetune_config, evaluate
    from cmmixer.experiment import own_share
    desc, over = CONFIGS[key]
    scale = scale_config('cpu', **over)
    out = ROOT / 'runs' / 'bench' / 'lpm' / key
    _, t_epoch = pretrain_timed(cache, scale, 1, out / 'probe', args.seed)
    epochs = max(1, int(budget // t_epoch))
    mae, t_pre = pretrain_timed(cache, scale, epochs, out / 'pretrain', args.seed)
    model = Retriever.from_pretrained(mae, seed=args.seed, **scale.retriever)
    cfg = finetune_config('cpu', seed=args.seed, out_dir=str(out / 'finetune'), progress=False)
    shutil.rmtree(out / 'finetune', ignore_errors=True)
    t = time.perf_counter()
    finetune(model, cache, cfg, fraction=own_share('cpu'), subset_seed=args.seed)
    t_ft = time.perf_counter() - t
    res = evaluate(model, cache, split='val', seed=args.seed)
    medr = (res['v2m']['MedR'] + res['m2v']['MedR']) / 2
    r10 = (res['v2m']['R@10'] + res['m2v']['R@10']) / 2
    row = dict(config=key, description=desc, params_M=sum(p.numel() for p in mae.parameters()) / 1e6,
               epoch_s=t_epoch, epochs=epochs, pretrain_s=t_pre, finetune_s=t_ft, val_v2m_MedR=res['v2m']['MedR'],
               val_m2v_MedR=res['m2v']['MedR'], val_MedR=medr, val_R10=r10)
    print(row, flush=True)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--configs', default=','.join(CONFIGS))
    p.add_argument('--budget', type=float, default=None, help='pre-training seconds per configuration')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--data', default=str(ROOT / 'data'))
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'learning_per_minute_cpu.md'))
    args = p.parse_args(argv)
    keys = args.configs.split(',')
    bad = [k for k in keys if k not in CONFIGS]
    if bad: raise SystemExit(f"--configs: unknown {bad}; known: {list(CONFIGS)}")
    torch.set_num_threads(args.threads)
    from cmmixer.pretrain import ensure_cache, scale_config
    from cmmixer.cache import as_cache
    cache = as_cache(ensure_cache('synth', 'cpu', root=Path(args.data), workers=2))
    budget = args.budget
    if budget is None:                                   # the cpu scale's own pre-training time, here and now
        _, budget = pretrain_timed(cache, scale_config('cpu'), None, ROOT / 'runs' / 'bench' / 'lpm' / 'budget', args.seed)
    df = pd.DataFrame([one_config(k, cache, budget, args) for k in keys])
    text = '\n'.join([
        "# Learning per CPU-minute (cpu scale, val split)", "",
        f"`python benchmarks/learning_per_minute.py {' '.join(sys.argv[1:])}`", "",
        f"machine: {platform.machine()}, {__import__('os').cpu_count()} cores, {args.threads} torch thread(s); "
        f"python {platform.python_version()}, torch {torch.__version__}; CutMix-Solo, seed {args.seed}, fp32; "
        f"pre-training budget {budget:.1f} s per configuration (whole epochs that fit it, timed from one epoch); "
        "fine-tuning: the cpu recipe (20 epochs, 25 % of the pairs), not budgeted; val pools of the cpu scale's cache", "",
        "```", df.to_string(index=False, float_format=lambda v: f"{v:.2f}"), "```", ""])
    print(text)
    Path(args.out).write_text(text)


if __name__ == '__main__':
    main()

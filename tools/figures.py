"""Figs. 2, 5-8 and Table 6 of the paper from real runs (chapter nbs/07_analysis.ipynb, `cmmixer.analysis.write_analysis`).

Reads pairs of Table 1 records (by default the CPU-scale CutMix-Solo runs and the same fine-tuning from a random encoder,
seeds 0-2, in their published copies under results/retrieval/), loads the checkpoints they name (under runs/), draws the
figures from the first seed's pair and measures every seed's, and writes results/analysis/: fig2_mixers.png,
fig5_tsne.png, fig6_zero_shot_<factor>.png, fig7_spectrograms.png, fig8_frames.png, table6.csv, analysis.csv (every number
of the figures beside its chance level, per seed) and analysis_summary.csv (mean, std, min, max over the seeds).
About a minute on one core.

    python tools/figures.py
    python tools/figures.py --records runs/records/table1 --pretrained 'synth_cpu_duet_cutmix_seed{seed}' --seeds 1
    python tools/figures.py --mixer-cache DATA_4x64_cache     # Fig. 2 from a 64 px cache of the same SynthM2M
"""
import argparse, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--records', default='results/retrieval', help='folder of Table 1 records (default: the published copies)')
    p.add_argument('--pretrained', default='synth_cpu_solo_cutmix_seed{seed}', help='record of the pre-trained-then-fine-tuned retriever')
    p.add_argument('--random', default='synth_cpu_random-init_seed{seed}', help='record of the random-init retriever')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='training seeds of the record pairs (figures: the first)')
    p.add_argument('--cache', default=None, help="the cache to analyse (default: the one the pre-training run read)")
    p.add_argument('--mixer-cache', default=None, help="Fig. 2's cache (default: --cache)")
    p.add_argument('--out', default='results/analysis')
    p.add_argument('--seed', type=int, default=0, help="the analysis' own seed (items, excerpts, masks, t-SNE)")
    a = p.parse_args(argv)
    import torch
    from cmmixer.core import project_path
    from cmmixer.analysis import write_analysis
    torch.set_num_threads(1)                                   # tiny tensors: one thread beats two busy ones
    recs = project_path(a.records)
    t0 = time.time()
    try:
        pairs = [(recs / (a.pretrained.format(seed=s) + '.json'), recs / (a.random.format(seed=s) + '.json')) for s in a.seeds]
        df = write_analysis(*pairs[0], a.out, cache=a.cache, mixer_cache=a.mixer_cache, also=pairs[1:], seed=a.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr); return 2
    import pandas as pd
    from cmmixer.analysis import summarize_numbers
    with pd.option_context('display.width', 250, 'display.max_colwidth', 90):
        print(summarize_numbers(df).round(3).to_string(index=False))
    print(f"wrote {project_path(a.out)} in {time.time() - t0:.0f} s")
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""The CPU-scale study: which small configuration lets SynthM2M's signal reach the model, on the VAL split only.

Each configuration (a JSON line in STUDY below, or --config '{...}') pre-trains CMMixer (or reuses the finished run),
fine-tunes the two towers from the pre-trained encoder and from a random one, optionally probes both frozen
encoders (heads only), and measures on the same val pools: chance, CCA on full-resolution features, CCA on the
model's own inputs, the oracle. One JSON per (configuration, seed) under runs/study/; `--gather` writes
results/cpu_scale_study.csv. Resumable: a finished (configuration, seed) is kept.

    python tools/cpu_study.py --run NAME [--seed 0]     # one configuration
    python tools/cpu_study.py --all --jobs 2            # every configuration not yet run
    python tools/cpu_study.py --gather                  # results/cpu_scale_study.csv
"""
import argparse, hashlib, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = dict(  # the committed smoke scale, as the study's starting point
    videos=1200, tracks=480, difficulty=0.25, src_size=64, duration=6.0, fps=8.0, clips=4,
    image_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, decoder_embed_dim=32, decoder_depth=1,
    mask_ratio=0.5, norm_pix_loss=False, decoder='solo', mixer='cutmix',
    pt_epochs=8, pt_lr=2e-3, pt_batch=16, repeats=2,
    ft_epochs=20, ft_lr=5e-4, ft_batch=16, enc_lr_scale=1.0, ft_fraction=1.0, probe=False, spec_antialias=True)

STUDY = {  # name: overrides of BASE (most promising levers first); chosen on val only
    'smoke': {},
    'smoke-normpix-enc.25': dict(norm_pix_loss=True, enc_lr_scale=0.25, probe=True),
    'smoke-pt32': dict(pt_epochs=32, probe=True),
    'smoke-pt32-aa': dict(pt_epochs=32, probe=True),      # fine-tuned on antialiased spectrogram images (pre-training reused)
    '6k-q': dict(videos=6000, tracks=2400, ft_fraction=0.25, probe=True),
    '6k-q-pt4': dict(videos=6000, tracks=2400, ft_fraction=0.25, pt_epochs=4),
}


def cfg_of(name, over=None):
    c = dict(BASE, **STUDY.get(name, {}), **(over or {}))
    return c


def digest(obj, n=10): return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


DATA_KEYS = ('videos', 'tracks', 'difficulty', 'src_size', 'duration', 'fps', 'clips')
PT_KEYS = DATA_KEYS + ('image_size', 'patch_size', 'embed_dim', 'depth', 'num_heads', 'decoder_embed_dim',
                       'decoder_depth', 'mask_ratio', 'norm_pix_loss', 'decoder', 'mixer', 'pt_epochs', 'pt_lr',
                       'pt_batch', 'repeats', 'spec_antialias')


def scale_of(c):
    from cmmixer.pretrain import scale_config
    synth = dict(videos=c['videos'], tracks=c['tracks'], duration=c['duration'], image_size=c['src_size'], fps=c['fps'],
                 clips=c['clips'], difficulty=c['difficulty'])
    same = synth == scale_config('smoke').synth               # the smoke scale's own SynthM2M: reuse its folder
    from dataclasses import replace
    return replace(scale_config('smoke', c['decoder'], synth=synth,
                        clips=c['clips'], image_size=c['image_size'], patch_size=c['patch_size'], embed_dim=c['embed_dim'],
                        depth=c['depth'], num_heads=c['num_heads'], decoder_embed_dim=c['decoder_embed_dim'],
                        decoder_depth=c['decoder_depth'], mask_ratio=c['mask_ratio'], norm_pix_loss=c['norm_pix_loss'],
                        epochs=c['pt_epochs'], lr=c['pt_lr'], batch_size=c['pt_batch'], repeats=c['repeats']),
                   name='smoke' if same else 'study-' + digest({k: c[k] for k in DATA_KEYS}, 8))


def cca_refs(cache, full_cache, image_size, split='val'):
    "The library's references on the val pools: CCA at full resolution and on the model's inputs, the oracle."
    from cmmixer.retrieval import reference_points
    ref = reference_points(cache, split, image_size=image_size, full_cache=full_cache)
    return dict(cca_full=ref['baseline_full'], cca_inputs=ref['baseline_inputs'], oracle=ref['oracle'])


def finetune_eval(mae, cache, c, seed, out_dir, probe=False, enc_scale=1.0):
    "Fine-tune the towers from `mae` with the library's `finetune` (as Table 1 does), evaluate on val."
    from cmmixer.retrieval import Retriever, finetune, finetune_config, evaluate
    model = Retriever.from_pretrained(mae, seed=seed)
    cfg = finetune_config('smoke', c['ft_epochs'], seed, out_dir=str(out_dir), lr=c['ft_lr'], batch_size=c['ft_batch'],
                          progress=False, device='cpu')
    t = time.perf_counter()
    hist = finetune(model, cache, cfg, fraction=c['ft_fraction'], subset_seed=seed, encoder_lr_scale=enc_scale,
                    freeze_encoder=probe)
    ft_s = time.perf_counter() - t
    res = evaluate(model, cache, split='val', device='cpu')
    return dict(v2m=res['v2m'], m2v=res['m2v'], chance_v2m=res['chance_v2m'], chance_m2v=res['chance_best_of_m2v'],
                whole_track=res['whole_track'], ft_s=round(ft_s, 1), steps=len(hist),
                final_loss=float(hist.loss.iloc[-1]) if len(hist) else None)


def run(name, seed=0, over=None):
    import torch
    torch.set_num_threads(1)
    from cmmixer.pretrain import ensure_cache, pretrain, load_pretrained
    from cmmixer.cache import Cache, prepare
    from cmmixer.media import MediaConfig
    from cmmixer.mae import CMMixerMAE
    from cmmixer.core import derive_seed
    c = cfg_of(name, over)
    key = digest(c)
    res_p = ROOT / 'runs' / 'study' / f"{name}_{key}_seed{seed}.json"
    if res_p.exists(): print(f"{res_p.name}: done"); return json.loads(res_p.read_text())
    sc = scale_of(c)
    t0 = time.perf_counter()
    cache = Cache(ensure_cache('synth', sc, root=ROOT / 'data', workers=1))
    data_s = time.perf_counter() - t0
    pt_dir = ROOT / 'runs' / 'study' / f"pt_{digest({k: c[k] for k in PT_KEYS})}_seed{seed}"
    t = time.perf_counter()
    pretrain(cache, sc, mixer=c['mixer'], seed=seed, out_dir=pt_dir)
    pt_s = time.perf_counter() - t
    from cmmixer.experiment import summarize_run
    pts = summarize_run(pt_dir)
    out = dict(name=name, key=key, seed=seed, cfg=c, data_s=round(data_s, 1), pt_s=round(pt_s, 1),
               pt_loss_video=pts['final_loss_video'], pt_loss_audio=pts['final_loss_audio'],
               train_pairs=int(len(cache.indices('train'))))
    ft_dir = ROOT / 'runs' / 'study' / f"ft_{key}_seed{seed}"
    out['pretrained'] = finetune_eval(load_pretrained(pt_dir), cache, c, seed, ft_dir / 'pretrained', enc_scale=c['enc_lr_scale'])
    torch.manual_seed(derive_seed(seed, 'init'))
    out['random'] = finetune_eval(CMMixerMAE(sc.mae), cache, c, seed, ft_dir / 'random')
    if c['probe']:
        out['probe_pretrained'] = finetune_eval(load_pretrained(pt_dir), cache, c, seed, ft_dir / 'probe_pt', probe=True)
        torch.manual_seed(derive_seed(seed, 'init'))
        out['probe_random'] = finetune_eval(CMMixerMAE(sc.mae), cache, c, seed, ft_dir / 'probe_rnd', probe=True)
    from cmmixer.experiment import full_resolution_cache
    out.update(cca_refs(cache, full_resolution_cache(cache, root=ROOT / 'data', workers=1), c['image_size']))
    out['total_s'] = round(time.perf_counter() - t0, 1)
    res_p.parent.mkdir(parents=True, exist_ok=True)
    res_p.write_text(json.dumps(out, indent=1, default=str))
    print(row_text(out), flush=True)
    return out


def row_text(o):
    f = lambda r: f"{r['v2m']['MedR']:g}/{r['m2v']['MedR']:g}"
    s = f"{o['name']} seed{o['seed']}: pt {f(o['pretrained'])}  rnd {f(o['random'])}"
    if 'probe_pretrained' in o: s += f"  probe pt {f(o['probe_pretrained'])} rnd {f(o['probe_random'])}"
    s += f"  cca full {f(o['cca_full'])} inputs {f(o['cca_inputs'])} oracle {f(o['oracle'])}  chance {o['pretrained']['chance_v2m']['MedR']:g}"
    return s + f"  (pt {o['pt_s']:.0f}s, ft {o['pretrained']['ft_s']:.0f}s, total {o['total_s']:.0f}s; audio loss {o['pt_loss_audio']:.3f})"


CHANGES = {'smoke': 'the smoke scale (1,200 videos; pre-train 8 epochs; fine-tune on all 839 train pairs)',
           'smoke-normpix-enc.25': 'smoke + norm_pix loss + encoder lr x0.25 in fine-tuning',
           'smoke-pt32': 'smoke, pre-trained 32 epochs',
           'smoke-pt32-aa': 'smoke-pt32, fine-tuned on antialiased spectrogram images',
           '6k-q-pt4': '6,000 videos (4,200 to pre-train on), fine-tune on 25 % (1,050 pairs), pre-train 4 epochs',
           '6k-q': '6,000 videos, fine-tune on 25 % of the pairs, pre-train 8 epochs: the cpu scale'}


def gather(out_csv=ROOT / 'results' / 'cpu_scale_study.csv'):
    "One row per (configuration, seed): what changed, the val median ranks of every method (V→M / M→V), wall times."
    import pandas as pd
    from cmmixer.train import read_log
    rows = []
    for p in sorted((ROOT / 'runs' / 'study').glob('*_seed*.json')):
        o = json.loads(p.read_text()); c = o['cfg']
        pt_dir = next((d for d in (ROOT / 'runs' / 'study' / f"pt_{digest({k: c[k] for k in keys if k in c})}_seed{o['seed']}"
                                   for keys in (PT_KEYS, PT_KEYS[:-1])) if d.exists()), None)   # before antialias was a key
        r = dict(config=o['name'], seed=o['seed'], change=CHANGES.get(o['name'], ''), videos=c['videos'],
                 pretrain_epochs=c['pt_epochs'], finetune_pairs=int(round(c['ft_fraction'] * o['train_pairs'])),
                 spec_antialias=c.get('spec_antialias', True), val_tracks=o['pretrained']['v2m']['N'],
                 val_videos=o['pretrained']['m2v']['N'])
        for m, lab in (('pretrained', 'CMMixer'), ('random', 'random_init'), ('probe_pretrained', 'probe_CMMixer'),
                       ('probe_random', 'probe_random'), ('cca_full', 'CCA_full_res'), ('cca_inputs', 'CCA_inputs'),
                       ('oracle', 'oracle')):
            r[f'{lab}_MedR'] = f"{o[m]['v2m']['MedR']:g} / {o[m]['m2v']['MedR']:g}" if m in o else ''
        r['chance_MedR'] = f"{o['pretrained']['chance_v2m']['MedR']:g} / {o['pretrained']['chance_m2v']['MedR']:g}"
        wall = lambda d: round(float(read_log(d).time.iloc[-1])) if d is not None and d.exists() else None
        r['pretrain_s'] = wall(pt_dir)                                    # from the runs' logs (reruns reuse them)
        r['finetune_s'] = wall(ROOT / 'runs' / 'study' / f"ft_{o['key']}_seed{o['seed']}" / 'pretrained')
        r['audio_loss'] = round(o['pt_loss_audio'], 3)
        r['note'] = o.get('note', '')
        rows.append(r)
    df = pd.DataFrame(rows)
    order = list(CHANGES)
    df = df.sort_values('config', key=lambda s: s.map(lambda x: order.index(x) if x in order else 99))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False)
    return df


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--run'); p.add_argument('--seed', type=int, default=0); p.add_argument('--config', default=None)
    p.add_argument('--all', action='store_true'); p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--seeds', type=int, default=1); p.add_argument('--gather', action='store_true')
    a = p.parse_args()
    if a.run: run(a.run, a.seed, json.loads(a.config) if a.config else None)
    if a.all:
        from concurrent.futures import ThreadPoolExecutor
        todo = [(n, s) for n in STUDY for s in range(a.seeds)]
        sh = lambda n, s: subprocess.run([sys.executable, __file__, '--run', n, '--seed', str(s)], check=False)
        with ThreadPoolExecutor(a.jobs) as ex: list(ex.map(lambda t: sh(*t), todo))
    if a.gather: print(gather().to_string())


if __name__ == '__main__':
    main()

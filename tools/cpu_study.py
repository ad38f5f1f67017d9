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
    'smoke-pt32-aa': dict(pt_epochs=32, probe=True),      # the same with antialiased spectrogram images (the new default)
    '6k': dict(videos=6000, tracks=2400),
}


def cfg_of(name, over=None):
    c = dict(BASE, **STUDY.get(name, {}), **(over or {}))
    return c


def digest(obj, n=10): return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


DATA_KEYS = ('videos', 'tracks', 'difficulty', 'src_size', 'duration', 'fps', 'clips')
PT_KEYS = DATA_KEYS + ('image_size', 'patch_size', 'embed_dim', 'depth', 'num_heads', 'decoder_embed_dim',
                       'decoder_depth', 'mask_ratio', 'norm_pix_loss', 'decoder', 'mixer', 'pt_epochs', 'pt_lr',
                       'pt_batch', 'repeats')


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


def input_features(cache, rows, image_size):
    "Hand-crafted features of exactly what the model sees: S px frames and the S x S spectrogram image scaled back."
    import numpy as np, torch, torch.nn.functional as F
    from cmmixer.synth import video_features, audio_features
    from cmmixer.media import spectrogram_image
    V, A = [], []
    mu, sd = cache.stats['fbank_mean'], cache.stats['fbank_std']
    for r in rows:
        fr = torch.from_numpy(np.array(cache.frames[int(r)]))
        if fr.shape[-1] != image_size:
            fr = F.interpolate(fr.float(), size=(image_size, image_size), mode='bilinear', antialias=True).round().clamp(0, 255).to(torch.uint8)
        fb = torch.from_numpy(np.array(cache.fbank[int(r)], dtype=np.float32))
        img = spectrogram_image(fb, image_size, mean=mu, std=sd)[:, :1]            # [K,1,S,S]
        back = F.interpolate(img, size=fb.shape[-2:], mode='bilinear', align_corners=False)[:, 0] * sd + mu
        V.append(video_features(fr.numpy())); A.append(audio_features(back.numpy()))
    return np.stack(V), np.stack(A)


def cca_refs(cache, full_cache, image_size, split='val'):
    from cmmixer.cache import RetrievalDataset
    from cmmixer.retrieval import evaluate_scores, cache_features, reference_points
    from cmmixer.synth import FeatureBaseline
    out = {}
    ref = reference_points(full_cache, split)                       # full-resolution frames + fbank, and the oracle
    out['cca_full'], out['oracle'] = ref['baseline'], ref['oracle']
    te, tr = RetrievalDataset(cache, split), RetrievalDataset(cache, 'train')
    b = FeatureBaseline('cca').fit(*input_features(cache, tr.rows, image_size))
    out['cca_inputs'] = evaluate_scores(b.scores(*input_features(cache, te.rows, image_size)), te.group_index)
    return out


def groups_fn(wd, enc_scale):
    from cmmixer.train import param_groups
    def f(model):
        gs = []
        for g in param_groups(model, wd):
            enc = [('.encoder.' in n) for n in g['param_names']]
            for flag, sc in ((True, enc_scale), (False, 1.0)):
                ps = [p for p, e in zip(g['params'], enc) if e == flag]
                ns = [n for n, e in zip(g['param_names'], enc) if e == flag]
                if ps: gs.append(dict(params=ps, param_names=ns, weight_decay=g['weight_decay'], lr_scale=sc))
        return gs
    return f


def finetune_eval(mae, cache, c, seed, out_dir, probe=False, enc_scale=1.0):
    import numpy as np, torch
    from cmmixer.retrieval import Retriever, PairDataset, finetune_config, retrieval_step, evaluate, input_spec
    from cmmixer.train import fit
    model = Retriever.from_pretrained(mae, seed=seed)
    if probe:
        for t in (model.video, model.music):
            for p in t.encoder.parameters(): p.requires_grad_(False)
    ds = PairDataset(cache, 'train', 1, image_size=c['image_size'], augment=True, seed=seed)
    if c['ft_fraction'] < 1:
        g = np.random.default_rng(1000 + seed)
        ds.rows = np.sort(g.permutation(ds.rows)[:max(2 * c['ft_batch'], int(round(c['ft_fraction'] * len(ds.rows))))])
    cfg = finetune_config('smoke', c['ft_epochs'], seed, out_dir=str(out_dir), lr=c['ft_lr'], batch_size=c['ft_batch'],
                          progress=False, device='cpu')
    model.cfg.inputs = input_spec(cache, c['image_size'])
    t = time.perf_counter()
    hist = fit(model, ds, cfg, step_fn=retrieval_step, resume='auto', groups=groups_fn(cfg.weight_decay, enc_scale))
    ft_s = time.perf_counter() - t
    res = evaluate(model, cache, split='val', device='cpu')
    return dict(v2m=res['v2m'], m2v=res['m2v'], chance_v2m=res['chance_v2m'], chance_m2v=res['chance_best_of_m2v'],
                ft_s=round(ft_s, 1), steps=len(hist), final_loss=float(hist.loss.iloc[-1]) if len(hist) else None)


def run(name, seed=0, over=None):
    import torch
    torch.set_num_threads(1)
    from cmmixer.pretrain import ensure_cache, pretrain, load_pretrained
    from cmmixer.cache import Cache, prepare
    from cmmixer.media import MediaConfig
    from cmmixer.mae import CMMixerMAE
    from cmmixer.train import derive_seed
    c = cfg_of(name, over)
    key = digest(c)
    res_p = ROOT / 'runs' / 'study' / f"{name}_{key}_seed{seed}.json"
    if res_p.exists(): print(f"{res_p.name}: done"); return json.loads(res_p.read_text())
    sc = scale_of(c)
    t0 = time.perf_counter()
    cache = Cache(ensure_cache('synth', sc, root=ROOT / 'data', workers=1))
    full = ROOT / 'data' / f"{cache.root.name.split('_' + str(c['clips']) + 'x')[0]}_{c['clips']}x{c['src_size']}_cache"
    src = Path(cache.meta['summary']['source'])
    prepare(src, full, MediaConfig(clips=c['clips'], image_size=c['src_size']), workers=1, progress=False)
    data_s = time.perf_counter() - t0
    pt_dir = ROOT / 'runs' / 'study' / f"pt_{digest({k: c[k] for k in PT_KEYS})}_seed{seed}"
    t = time.perf_counter()
    pretrain(cache, sc, mixer=c['mixer'], seed=seed, out_dir=pt_dir)
    pt_s = time.perf_counter() - t
    from cmmixer.pretrain import summarize_run
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
    out.update(cca_refs(cache, Cache(full), c['image_size']))
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


def gather(out_csv=ROOT / 'results' / 'cpu_scale_study.csv'):
    import pandas as pd
    rows = []
    for p in sorted((ROOT / 'runs' / 'study').glob('*_seed*.json')):
        o = json.loads(p.read_text())
        r = dict(name=o['name'], seed=o['seed'], **{k: v for k, v in o['cfg'].items() if v != BASE.get(k)},
                 train_pairs=o['train_pairs'], val_tracks=o['pretrained']['v2m']['N'], val_videos=o['pretrained']['m2v']['N'])
        for m in ('pretrained', 'random', 'probe_pretrained', 'probe_random', 'cca_full', 'cca_inputs', 'oracle'):
            if m in o:
                for d in ('v2m', 'm2v'):
                    r[f'{m}_{d}_MedR'] = o[m][d]['MedR']; r[f'{m}_{d}_R@10'] = o[m][d]['R@10']
        r['chance_v2m_MedR'] = o['pretrained']['chance_v2m']['MedR']; r['chance_m2v_MedR'] = o['pretrained']['chance_m2v']['MedR']
        r.update(pt_s=o['pt_s'], ft_s=o['pretrained']['ft_s'], total_s=o['total_s'], pt_loss_video=o['pt_loss_video'],
                 pt_loss_audio=o['pt_loss_audio'])
        rows.append(r)
    df = pd.DataFrame(rows)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_csv, index=False, float_format='%.4g')
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

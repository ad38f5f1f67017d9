"""GPU benchmark of the paper configuration, in one script that fits a 3-minute device slot.

    python benchmarks/gpu.py                 # CUDA: paper config (ViT-B, 8 x 224 px, mask 0.5, batch 32), bf16
    python benchmarks/gpu.py --tiny --no-compile   # any machine: the smoke config on the CPU, fp32 (the test suite's run)

It measures, on the device it finds:
1. the device's bf16 matmul rate (8192^3 matmuls; fp32 on the CPU), the denominator of MFU;
2. the pre-training step (cmmixer.pretrain.pretrain_step: CutMix mixer + MAE forward/backward + fused AdamW) for
   CMMixer-Solo and -Duet, eager and torch.compile: samples/s, MFU (model FLOPs forward+backward counted by
   cmmixer.mae.count_flops x samples/s / the matmul rate), peak memory;
3. the data loader: samples/s of cmmixer.datasets.PretrainDataset (random resized crop, spectrogram images) over a
   cache of random content in the real format, through a DataLoader with the machine's cores, against the best
   pre-training samples/s (can the loader feed the model? target >= 1.5x);
4. the retrieval fine-tuning step (two towers of the same encoder, InfoNCE, bf16): samples/s.
Every figure is printed with the device, dtype and batch size, and written to benchmarks/gpu_results.md (--out).
Parts that would overrun --budget seconds are skipped and listed as skipped, not guessed.

On a bare GPU machine (torch, timm, numpy, pandas, safetensors present; nothing of this project installed), the
script runs from the checkout: it puts the project root on sys.path. cmmixer also needs fastcore and PyAV: install
their wheels first when they are missing (`make gpu-wheels` downloads them for Python 3.12 into .whl/, see README).
"""
import argparse, json, math, os, platform, sys, tempfile, time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]                   # the project, and benchmarks/pretrain.py beside this file

import numpy as np
import torch

from cmmixer.mae import count_flops
from cmmixer.mixer import MixerConfig
from cmmixer.pretrain import scale_config
from cmmixer.media import MediaConfig
from pretrain import matmul_rate, run_variant, sync, device_slug


def synthetic_cache(root: Path, n: int, cfg: MediaConfig, seed: int = 0) -> Path:
    "A cache folder in prepare's format holding `n` records of random frames and spectrograms (for loader timing)."
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    K, S, M, T = cfg.clips, cfg.image_size, cfg.num_mel_bins, cfg.n_fbank_frames
    fr = np.lib.format.open_memmap(root / 'frames.npy', 'w+', np.uint8, (n, K, 3, S, S))
    fb = np.lib.format.open_memmap(root / 'fbank.npy', 'w+', np.float16, (n, K, M, T))
    for i in range(0, n, 64):
        m = min(64, n - i)
        fr[i:i + m] = rng.integers(0, 256, (m, K, 3, S, S), dtype=np.uint8)
        fb[i:i + m] = rng.standard_normal((m, K, M, T)).astype(np.float16)
    fr.flush(); fb.flush(); del fr, fb
    import pandas as pd
    from cmmixer.cache import MANIFEST_COLUMNS
    rows = [dict(index=i, id=f"r{i}", group=f"g{i}", label='', split='train', video='', audio='', audio_offset=0.0,
                 need='video+audio', duration=8.0, has_video=True, has_audio=True, flags='{}', shard=f"s{i}") for i in range(n)]
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(root / 'manifest.csv', index=False)
    (root / 'rejects.csv').write_text('id,file,reason,split,group\n')
    (root / 'stats.json').write_text(json.dumps(dict(fbank_mean=0.0, fbank_std=1.0, frame_mean=[0.5] * 3, frame_std=[0.25] * 3,
                                                     split='train', records=n)))
    (root / 'meta.json').write_text(json.dumps(dict(version=1, fingerprint='synthetic', kind='records', classes=[], multilabel=False,
                                                    cfg=asdict(cfg), fbank_dtype='float16', fractions=[1, 0, 0],
                                                    summary=dict(records=n, prepared=n, rejected=0, splits={'train': n}))))
    return root


def loader_rate(cache: Path, image_size: int, batch: int, workers: int, seconds: float, pin: bool) -> float:
    "Samples/s of PretrainDataset through a DataLoader (after its first batches), over about `seconds`."
    from cmmixer.datasets import PretrainDataset
    ds = PretrainDataset(cache, 'train', repeats=2, image_size=image_size, augment=True, seed=0)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, pin_memory=pin, drop_last=True,
                                     persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    n, t0, warm = 0, None, 2 * max(1, workers)
    for _ in range(100):                                        # epochs, until enough time has passed
        for i, b in enumerate(dl):
            if t0 is None and i + 1 >= warm: t0 = time.perf_counter(); continue
            if t0 is not None:
                n += len(b['video'])
                if time.perf_counter() - t0 > seconds: return n / (time.perf_counter() - t0)
    return n / (time.perf_counter() - t0) if t0 and n else float('nan')


def retrieval_rate(cfg, dev, batch: int, steps: int, warmup: int, dtype: str) -> tuple:
    "Seconds per fine-tuning step of the two-tower retriever (InfoNCE) and the peak memory (MB)."
    from cmmixer.retrieval import Retriever, RetrieverConfig, retrieval_step
    torch.manual_seed(0)
    model = Retriever(RetrieverConfig(mae=cfg)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, fused=dev.type in ('cuda', 'cpu'))
    shape = (batch, cfg.clips, 3, cfg.image_size, cfg.image_size)
    b = dict(video=torch.randn(shape, device=dev), audio=torch.randn(shape, device=dev), group=torch.arange(batch, device=dev))
    g = torch.Generator(device=dev).manual_seed(0)
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev)
    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            loss = retrieval_step(model, b, g)['loss']
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(warmup): step()
    sync(dev); t0 = time.perf_counter()
    for _ in range(steps): step()
    sync(dev)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == 'cuda' else float('nan')
    return (time.perf_counter() - t0) / steps, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tiny', action='store_true', help='the smoke config, fp32, on the CPU (tests)')
    ap.add_argument('--batch', type=int, default=None, help='per-device batch (default: 32; --tiny: 4)')
    ap.add_argument('--steps', type=int, default=None, help='timed steps per variant (default: 15; --tiny: 2)')
    ap.add_argument('--budget', type=float, default=170.0, help='seconds; parts that would overrun are skipped')
    ap.add_argument('--no-compile', action='store_true', help='eager only (torch.compile takes minutes on a CPU)')
    ap.add_argument('--workers', type=int, default=None, help='DataLoader workers (default: cores - 2)')
    ap.add_argument('--out', default=str(HERE / 'gpu_results.md'))
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    left = lambda: a.budget - (time.perf_counter() - t_start)
    dev = torch.device('cpu' if a.tiny or not torch.cuda.is_available() else 'cuda')
    dtype = 'bf16' if dev.type == 'cuda' else 'fp32'
    scale = scale_config('smoke' if a.tiny else 'paper')
    B, steps, warmup = a.batch or (4 if a.tiny else 32), a.steps or (2 if a.tiny else 15), 1 if a.tiny else 3
    workers = a.workers if a.workers is not None else (0 if a.tiny else max(1, (os.cpu_count() or 2) - 2))
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else (platform.processor() or platform.machine())
    if dev.type == 'cuda': torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    facts = (f"{name}; {os.cpu_count()} CPU cores; python {platform.python_version()}, torch {torch.__version__}; "
             f"config {scale.name} (clips {scale.clips}, {scale.image_size} px, width {scale.mae.embed_dim}, depth {scale.mae.depth}, "
             f"mask {scale.mae.mask_ratio}); dtype {dtype}; batch {B} per device")
    print(facts, flush=True)
    rate = matmul_rate(dev, torch.bfloat16 if dtype == 'bf16' else torch.float32, n=512 if a.tiny else None)
    print(f"matmul rate ({dtype}): {rate / 1e12:.2f} TFLOP/s", flush=True)
    rows, skipped = [], []
    for decoder in ('solo', 'duet'):
        cfg = scale_config(scale.name, decoder)
        flops = count_flops(cfg.mae, backward=True)
        for compiled in ((False,) if a.no_compile else (False, True)):
            what = f"pre-train CMMixer-{decoder.title()} {'compiled' if compiled else 'eager'}"
            if left() < (75 if compiled and not a.tiny else 15): skipped.append(what); continue
            t0 = time.perf_counter()
            s, peak = run_variant(cfg.mae, cfg.train, MixerConfig('cutmix'), dev, B, steps, warmup, dtype, compiled, False)
            rows.append(dict(part=what, dtype=dtype, batch=B, samples_s=B / s, step_ms=1e3 * s, mfu=100 * flops * B / s / rate,
                             peak_mb=peak if dev.type == 'cuda' else float('nan')))
            print(f"  {what}: {B / s:.1f} samples/s, MFU {rows[-1]['mfu']:.1f}% ({time.perf_counter() - t0:.0f} s)", flush=True)
            if dev.type == 'cuda': torch.cuda.empty_cache()
    best = max((r['samples_s'] for r in rows), default=float('nan'))
    if left() > 20:
        with tempfile.TemporaryDirectory() as tmp:
            n = 64 if a.tiny else 1024
            media = MediaConfig(clips=scale.clips, image_size=scale.image_size)
            t0 = time.perf_counter(); cache = synthetic_cache(Path(tmp) / 'cache', n, media)
            r = loader_rate(cache, scale.image_size, B, workers, 3 if a.tiny else min(20, left() / 3), dev.type == 'cuda')
            rows.append(dict(part=f"data loader ({workers} workers, {n} cached videos)", dtype='uint8 -> fp32', batch=B,
                             samples_s=r, step_ms=1e3 * B / r, mfu=float('nan'), peak_mb=float('nan'), x_model=r / best))
            print(f"  loader: {r:.1f} samples/s = {r / best:.2f}x the best pre-training step ({time.perf_counter() - t0:.0f} s)", flush=True)
    else: skipped.append('data loader')
    if left() > 15:
        s, peak = retrieval_rate(scale.mae, dev, B, steps, warmup, dtype)
        rows.append(dict(part='retrieval fine-tuning step (two towers, InfoNCE)', dtype=dtype, batch=B, samples_s=B / s,
                         step_ms=1e3 * s, mfu=float('nan'), peak_mb=peak))
        print(f"  retrieval fine-tuning: {B / s:.1f} samples/s", flush=True)
    else: skipped.append('retrieval fine-tuning step')
    head = "| part | dtype | batch / device | samples/s | ms / step | MFU % | peak memory (MiB) | loader / best model |"
    lines = [head, '|' + '---|' * 8]
    f = lambda x, d=1: '-' if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"
    for r in rows:
        lines.append(f"| {r['part']} | {r['dtype']} | {r['batch']} | {f(r['samples_s'])} | {f(r['step_ms'])} | {f(r['mfu'])} | "
                     f"{f(r['peak_mb'], 0)} | {f(r.get('x_model'), 2)} |")
    wall = time.perf_counter() - t_start
    md = (f"# GPU benchmark ({device_slug(dev)})\n\n`python benchmarks/gpu.py{' --tiny' if a.tiny else ''}`: {facts}; "
          f"measured {dtype} matmul rate {rate / 1e12:.2f} TFLOP/s (the MFU denominator); {steps} timed steps after {warmup}; "
          f"whole run {wall:.0f} s.\n\n" + '\n'.join(lines) + '\n\n'
          + (f"Skipped (over the {a.budget:.0f} s budget): {', '.join(skipped)}.\n\n" if skipped else '')
          + "Targets: MFU >= 45% in bf16 on an H100/H200 for pre-training; the loader >= 1.5x the model's samples/s.\n")
    Path(a.out).write_text(md)
    print('\n' + md + f"\nwritten to {a.out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())

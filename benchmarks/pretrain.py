"""Pre-training step benchmark: samples/s, step time, peak memory and model-FLOPs utilisation (MFU) of CMMixer's
training step (mixer + MAE forward/backward + AdamW), for eager vs compiled and fp32 vs bf16, beside a plain
reference loop in the same run.

    python benchmarks/pretrain.py                      # CUDA: the `paper` config; no GPU: the `smoke` config on the CPU
    python benchmarks/pretrain.py --scale smoke --steps 20 --decoder duet --mixer mixup

MFU = model FLOPs per sample (forward + backward, counted by `cmmixer.mae.count_flops`, 2 FLOPs per multiply-add,
attention included) x samples/s / the device's matmul rate in the variant's dtype, measured here on large square
matmuls (GPU: bf16 and fp32; CPU: fp32). The plain reference is the same model and loop written plainly: fp32, eager,
timm's unfused attention (`attn.fused_attn = False`), torch's default AdamW, the mixer and the masking noise drawn
batch-wide from one generator. Our step is `cmmixer.pretrain.pretrain_step` (per-sample draws so DDP equals one
process, fused attention) with the engine's optimizer (fused AdamW, CUDA and CPU). Inputs are synthetic random images:
the benchmark measures the model and optimizer step, not data loading.

Targets (printed with the table): MFU >= 40% on an H100 in bf16; >= 2x the plain reference's samples/s.
Writes the table, with the machine's facts, to benchmarks/pretrain_results_<device>.md.
"""
import argparse, math, os, platform, re, resource, sys, time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch

from cmmixer.mae import CMMixerMAE, count_flops
from cmmixer.mixer import CrossModalMixer, MixerConfig
from cmmixer.pretrain import scale_config, pretrain_step
from cmmixer.train import param_groups, make_optimizer
from cmmixer.randomness import StepGenerator
from timm.models.vision_transformer import Block


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def matmul_rate(dev, dtype, n=None, reps=None) -> float:
    "Measured FLOP/s of n x n x n matmuls in `dtype` (2 n^3 FLOPs each), best of a few timed runs."
    n = n or (8192 if dev.type == 'cuda' else 1024)
    reps = reps or (20 if dev.type == 'cuda' else 5)
    a = torch.randn(n, n, device=dev, dtype=dtype); b = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3): a @ b
    sync(dev)
    best = float('inf')
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps): a @ b
        sync(dev)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n ** 3 / best


def plain_step(model, batch, generator, mixer):
    "The reference loop's step, written plainly: batch-wide mixer masks and noise from one generator."
    video, audio = batch['video'], batch['audio']
    mixed = mixer(video, audio, generator)
    noise = torch.rand(video.shape[0], model.cfg.num_tokens, generator=generator, device=generator.device)
    return model(mixed, video, audio, noise=noise.to(video.device))


def run_variant(cfg, train, mixer_cfg, dev, batch_size, steps, warmup, dtype, compiled, plain):
    "Time `steps` training steps (one block, synchronised at its ends) after `warmup` ones: (seconds per step, peak MB)."
    torch.manual_seed(0)
    model = CMMixerMAE(cfg).to(dev)
    if plain:
        for b in model.modules():
            if isinstance(b, Block): b.attn.fused_attn = False
        opt = torch.optim.AdamW(model.parameters(), lr=train.lr, betas=train.betas, weight_decay=train.weight_decay)
    else:
        opt = torch.optim.AdamW(param_groups(model, train.weight_decay), lr=train.lr, betas=train.betas,
                                fused=dev.type in ("cuda", "cpu"))   # as cmmixer.train.fit
    run = torch.compile(model) if compiled else model
    mixer = CrossModalMixer(mixer_cfg)
    shape = (batch_size, cfg.clips, cfg.in_chans, cfg.image_size, cfg.image_size)
    g = torch.Generator(device=dev).manual_seed(0)
    batch = dict(video=torch.randn(shape, device=dev, generator=g), audio=torch.randn(shape, device=dev, generator=g))
    amp = torch.autocast(dev.type, dtype=torch.bfloat16) if dtype == 'bf16' else nullcontext()
    model.train()
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)
    def step(i):
        with amp:
            if plain: out = plain_step(run, batch, torch.Generator(device=dev).manual_seed(i), mixer)
            else: out = pretrain_step(run, batch, StepGenerator(0, i, 0, range(batch_size), device=dev), mixer)
        opt.zero_grad(set_to_none=True)
        out['loss'].backward()
        opt.step()
        return out['loss'].detach()
    for i in range(warmup): step(i)                      # compilation happens here
    sync(dev); t0 = time.perf_counter()
    losses = [step(warmup + i) for i in range(steps)]    # no host sync inside the block, as in training (log_every > 1)
    sync(dev); seconds = time.perf_counter() - t0
    if not all(math.isfinite(l.item()) for l in losses): raise FloatingPointError("non-finite loss")
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 20
    del run, model, opt, batch
    return seconds / steps, peak


def run_real(scale, train, mixer_cfg, steps, warmup, preload) -> tuple:
    """Time `steps` whole training steps of the `cpu` scale on its prepared cache (data/, prepared first if missing):
    the batch read and augmented by PretrainDataset through a DataLoader (the engine's loader, 0 workers), then the
    step. `preload`: hold the split in memory (PRELOAD_MB) or read each record from the memory-mapped arrays (as at
    commit 6c837d5). (seconds per step, peak MB)."""
    from cmmixer.datasets import PretrainDataset, PRELOAD_MB
    from cmmixer.pretrain import ensure_cache
    from cmmixer.randomness import EpochSampler
    from torch.utils.data import DataLoader
    cache = ensure_cache('synth', scale, root=Path(__file__).resolve().parents[1] / 'data', workers=2)
    ds = PretrainDataset(cache, 'train', repeats=scale.repeats, image_size=scale.image_size, augment=True, seed=0,
                         preload_mb=PRELOAD_MB if preload else None)
    if preload: ds.preload()                             # once per run, as the first batch of a run does
    torch.manual_seed(0)
    model = CMMixerMAE(scale.mae)
    opt = make_optimizer(model, train)                   # the engine's AdamW, as a run builds it
    mixer = CrossModalMixer(mixer_cfg)
    B = train.batch_size
    batches = iter(DataLoader(ds, batch_size=B, sampler=EpochSampler(ds, B, seed=0), drop_last=True))
    model.train()
    def step(i):
        b = next(batches)
        out = pretrain_step(model, b, StepGenerator(0, i, 0, range(B)), mixer)
        opt.zero_grad(set_to_none=True)
        out['loss'].backward()
        opt.step()
        return out['loss'].detach()
    for i in range(warmup): step(i)
    t0 = time.perf_counter()
    losses = [step(warmup + i) for i in range(steps)]
    seconds = time.perf_counter() - t0
    if not all(math.isfinite(l.item()) for l in losses): raise FloatingPointError("non-finite loss")
    return seconds / steps, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def draw_cost(cfg, mixer_cfg, dev, batch_size, reps=20) -> tuple:
    "Host ms per step of our per-sample random draws (mixer masks + masking noise) vs the plain batch-wide draws."
    mixer = CrossModalMixer(mixer_cfg)
    shape = (batch_size, cfg.clips, cfg.in_chans, cfg.image_size, cfg.image_size)
    x = torch.zeros(shape, device=dev)
    def ours(i):
        g = StepGenerator(0, i, 0, range(batch_size), device=dev)
        return mixer.masks(shape, seeds=g.seeds(dev), device=dev), g.rand_per_sample(cfg.num_tokens, device=dev)
    def plain(i):
        g = torch.Generator(device=dev).manual_seed(i)
        return mixer.masks(shape, g, dev), torch.rand(batch_size, cfg.num_tokens, generator=g, device=dev)
    out = []
    for f in (ours, plain):
        f(0); sync(dev); t0 = time.perf_counter()
        for i in range(reps): f(i)
        sync(dev); out.append(1e3 * (time.perf_counter() - t0) / reps)
    return tuple(out)


def device_slug(dev) -> str:
    if dev.type == 'cpu': return 'cpu'
    return 'cuda_' + re.sub(r'[^a-z0-9]+', '_', torch.cuda.get_device_name(dev).lower()).strip('_')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--scale', choices=('smoke', 'cpu', 'paper'), default=None,
                    help='default: paper on CUDA, smoke on the CPU; cpu adds two rows on the cpu scale\'s real cached inputs')
    ap.add_argument('--decoder', choices=('solo', 'duet'), default='solo')
    ap.add_argument('--mixer', choices=('cutmix', 'pixel_mixup', 'mixup'), default='cutmix')
    ap.add_argument('--batch', type=int, default=None, help="batch size (default: the scale's)")
    ap.add_argument('--steps', type=int, default=None, help='timed steps per variant (default: 20 CUDA, 15 CPU)')
    ap.add_argument('--warmup', type=int, default=3, help='untimed steps first (compilation happens there)')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    ap.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto')
    ap.add_argument('--out', default=None, help='default: benchmarks/pretrain_results_<device>.md')
    a = ap.parse_args(argv)
    dev = torch.device('cuda' if a.device == 'cuda' or (a.device == 'auto' and torch.cuda.is_available()) else 'cpu')
    if a.threads: torch.set_num_threads(a.threads)
    scale = scale_config(a.scale or ('paper' if dev.type == 'cuda' else 'smoke'), a.decoder)
    cfg, train = scale.mae, scale.train
    B = a.batch or train.batch_size
    steps = a.steps or (20 if dev.type == 'cuda' else 15)
    if dev.type == 'cuda': torch.backends.cudnn.benchmark = True
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads), scale {scale.name}, CMMixer-{a.decoder.title()}, mixer {a.mixer}, batch {B}, "
          f"{steps} timed steps after {a.warmup}", flush=True)

    flops = count_flops(cfg, backward=True)                   # per sample, forward + backward, on the meta device
    rates = {'fp32': matmul_rate(dev, torch.float32)}
    machine_rate = rates['fp32']
    if dev.type == 'cpu' and torch.get_num_threads() < (os.cpu_count() or 1):   # the machine's rate: every core
        n = torch.get_num_threads(); torch.set_num_threads(os.cpu_count())
        machine_rate = matmul_rate(dev, torch.float32); torch.set_num_threads(n)
    if dev.type == 'cuda': rates['bf16'] = matmul_rate(dev, torch.bfloat16)
    print(f"model: {flops / 1e9:.2f} GFLOPs per sample (forward + backward); measured matmul rate: "
          + ', '.join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in rates.items())
          + (f" ({torch.get_num_threads()} threads), fp32 {machine_rate / 1e12:.3f} TFLOP/s on every core"
             if dev.type == 'cpu' else ''), flush=True)

    d_ours, d_plain = draw_cost(cfg, MixerConfig(a.mixer), dev, B)
    draws = (f"random draws per step (host): ours per-sample (DDP-invariant) {d_ours:.2f} ms, plain batch-wide {d_plain:.2f} ms; "
             f"on a GPU ours overlap the previous step's kernels (no host sync inside a step)")
    print(draws, flush=True)
    variants = [('plain reference', 'fp32', False, True), ('ours eager', 'fp32', False, False),
                ('ours compiled', 'fp32', True, False), ('ours eager', 'bf16', False, False)]
    if dev.type == 'cuda': variants.append(('ours compiled', 'bf16', True, False))
    rows = []
    for name, dtype, compiled, plain in variants:
        t0 = time.perf_counter()
        try:
            step_s, peak = run_variant(cfg, train, MixerConfig(a.mixer), dev, B, steps, a.warmup, dtype, compiled, plain)
        except Exception as e:                               # e.g. bf16 autocast unsupported on this CPU
            print(f"  {name} {dtype}: skipped ({type(e).__name__}: {str(e)[:200]})", flush=True)
            continue
        sps = B / step_s
        rate = rates.get(dtype, rates['fp32'])
        rows.append({'device': device_slug(dev), 'variant': name, 'dtype': dtype + ('' if dtype == 'fp32' or dev.type == 'cuda' else ' autocast'),
                     'compiled': compiled, 'fused attn': not plain, 'batch': B, 'step ms': 1e3 * step_s,
                     'samples/s': sps, 'peak mem MB': peak, 'TFLOP/s': flops * sps / 1e12,
                     'matmul TFLOP/s': rate / 1e12, 'MFU %': 100 * flops * sps / rate})
        print(f"  {name} {dtype}: {1e3 * step_s:.1f} ms/step, {sps:.1f} samples/s ({time.perf_counter() - t0:.0f} s incl. warm-up)", flush=True)
        if dev.type == 'cuda': torch.cuda.empty_cache()
    if scale.name == 'cpu' and dev.type == 'cpu':       # whole steps on real inputs: the loader as at 6c837d5, and now
        for name, preload in (('real inputs, per-record reads (6c837d5)', False), ('real inputs, split in memory', True)):
            step_s, peak = run_real(scale, train, MixerConfig(a.mixer), steps, a.warmup, preload)
            sps = B / step_s
            rows.append({'device': device_slug(dev), 'variant': name, 'dtype': 'fp32', 'compiled': False,
                         'fused attn': True, 'batch': B, 'step ms': 1e3 * step_s, 'samples/s': sps, 'peak mem MB': peak,
                         'TFLOP/s': flops * sps / 1e12, 'matmul TFLOP/s': rates['fp32'] / 1e12,
                         'MFU %': 100 * flops * sps / rates['fp32']})
            print(f"  {name}: {1e3 * step_s:.1f} ms/step, {sps:.1f} samples/s", flush=True)
    df = pd.DataFrame(rows)
    if dev.type == 'cpu': df[f'MFU % of {os.cpu_count()}-thread rate'] = 100 * df['TFLOP/s'] * 1e12 / machine_rate
    base = df.loc[df.variant == 'plain reference', 'samples/s']
    df['x plain'] = df['samples/s'] / base.iloc[0] if len(base) else float('nan')
    pd.set_option('display.width', 200)
    table = df.to_string(index=False, float_format=lambda x: f'{x:.3g}' if abs(x) < 100 else f'{x:.0f}')
    is_bf16 = df.dtype.str.startswith('bf16')
    best_bf16 = df.loc[is_bf16, 'MFU %'].max() if is_bf16.any() else float('nan')
    best_x = df.loc[df.variant != 'plain reference', 'x plain'].max()
    targets = (f"targets: MFU >= 40% on an H100 in bf16 (best bf16 here: {best_bf16:.1f}%"
               f"{'' if dev.type == 'cuda' else '; CPU run, the target applies to GPUs'}); "
               f">= 2x the plain reference's samples/s (best here: {best_x:.2f}x)")
    peak_note = ('peak mem: torch.cuda.max_memory_allocated per variant' if dev.type == 'cuda'
                 else 'peak mem: the process\'s peak RSS so far (cumulative over the variants, CPU)')
    facts = (f"machine: {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else (platform.processor() or platform.machine())}, "
             f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads; python {platform.python_version()}, "
             f"torch {torch.__version__}; scale {scale.name} (clips {cfg.clips}, {cfg.image_size} px, patch {cfg.patch_size}, "
             f"width {cfg.embed_dim}, depth {cfg.depth}, decoder {a.decoder} {cfg.decoder_embed_dim}x{cfg.decoder_depth}, "
             f"mask {cfg.mask_ratio}), mixer {a.mixer}, batch {B}, {steps} steps timed as one block after {a.warmup}; "
             f"{flops / 1e9:.3g} GFLOPs per sample forward+backward")
    print('\n' + table + '\n\n' + targets + '\n' + draws + '\n' + peak_note + '\n' + facts)
    out = Path(a.out or Path(__file__).parent / f'pretrain_results_{device_slug(dev)}.md')
    md = df.to_markdown(index=False, floatfmt='.3g') if _has_tabulate() else '```\n' + table + '\n```'
    cmd = ' '.join(['python benchmarks/pretrain.py', *(argv if argv is not None else sys.argv[1:])])
    out.write_text(f"# Pre-training step benchmark ({device_slug(dev)})\n\n`{cmd}`\n\n{facts}\n\n{md}\n\n{targets}\n\n{draws}\n\n{peak_note}\n")
    print(f"written to {out}")
    return df


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError: return False


if __name__ == '__main__':
    main()

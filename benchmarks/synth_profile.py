"""Where SynthM2M generation spends its time: `cmmixer.synth_m2m.generate` at the cpu scale's settings on a sample of
videos, profiled in one process (cProfile, exclusive time), grouped into parts.

    python benchmarks/synth_profile.py                 # 120 videos, 48 tracks, one worker
    python benchmarks/synth_profile.py --videos 300

Generation and cache preparation are the larger share of `make reproduce` from nothing; this table says which part of
generation could be made faster. Writes benchmarks/synth_profile_cpu.md.
"""
import argparse, cProfile, platform, pstats, shutil, sys, tempfile, time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# part -> substrings of "file:function" (the first match wins)
PARTS = [('AAC audio encoding (PyAV)', ("encode' of 'av.audio",)),
         ('H.264 video encoding (PyAV)', ("encode' of 'av.video",)),
         ('muxing, frames into PyAV, container', ('av.', 'encode.py')),
         ('rendering video frames (numpy)', ('synth.py:render_video', 'synth.py:_shape_mask', 'synth.py:inside',
                                             'synth.py:_positions', 'synth.py:_texture', 'synth.py:_hsv', 'numeric.py:roll')),
         ('synthesising music and natural sound (numpy)', ('synth.py:', 'synth_m2m.py:', 'pocketfft', '_methods.py'))]


def part_of(key: str) -> str:
    return next((name for name, subs in PARTS if any(s in key for s in subs)), 'other (Python, numpy, files)')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--videos', type=int, default=120)
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'synth_profile_cpu.md'))
    a = p.parse_args(argv)
    from cmmixer.synth_m2m import SynthConfig, generate
    from cmmixer.pretrain import scale_config
    kw = dict(scale_config('cpu').synth, videos=a.videos, tracks=round(a.videos * 0.4))
    out = Path(tempfile.mkdtemp()) / 'synth'
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    generate(out, SynthConfig(**kw), workers=1, progress=False)
    prof.disable()
    wall = time.perf_counter() - t0
    shutil.rmtree(out.parent, ignore_errors=True)
    stats = pstats.Stats(prof).stats
    rows = {}
    for (file, line, fn), (cc, nc, tt, ct, callers) in stats.items():
        key = f"{Path(file).name}:{fn}" if file != '~' else fn
        rows[part_of(key)] = rows.get(part_of(key), 0.0) + tt
    df = pd.DataFrame(sorted(rows.items(), key=lambda kv: -kv[1]), columns=['part', 'seconds'])
    df['share %'] = 100 * df.seconds / df.seconds.sum()
    df['ms per video'] = 1e3 * df.seconds / a.videos
    text = '\n'.join([
        "# SynthM2M generation profile (cpu scale settings)", "",
        f"`python benchmarks/synth_profile.py {' '.join(sys.argv[1:])}`", "",
        f"machine: {platform.machine()}, one worker process; python {platform.python_version()}; {a.videos} videos and "
        f"{kw['tracks']} tracks with the cpu scale's settings ({kw['duration']} s, {kw['image_size']} px, {kw['fps']} fps); "
        f"{wall:.1f} s wall under cProfile (exclusive time per function, grouped)", "",
        "```", df.to_string(index=False, float_format=lambda v: f"{v:.2f}"), "```", "",
        "The encoders write the benchmark's files: a faster setting (another preset, codec or bitrate) would change the "
        "decoded frames and sound, so every result made from SynthM2M; they are left as they are.", ""])
    print(text)
    Path(a.out).write_text(text)


if __name__ == '__main__':
    main()

"""Media decoding benchmark: files/s of `prepare` at 1 and 2 workers beside the decode floor.

The floor is the time `ffmpeg -i FILE -f null -` takes to decode every frame and sample of the same files
(one process, ffmpeg's default threads). `prepare` decodes only what the model needs (K frames found by
seeking, K audio windows), so on long files it can beat the floor; on short files its per-file overhead
(Python, fbank, writing the cache) dominates.

    python benchmarks/media.py [--videos 48] [--long-seconds 60] [--out benchmarks/media_results.md]

Needs the ffmpeg command line (`make bench` installs it with apt when missing). Prints a table and writes it,
with the machine's facts, to --out.
"""
import argparse, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import pandas as pd
import torch

from cmmixer.media import MediaConfig, load_clips
from cmmixer.cache import prepare
from cmmixer.synth import generate


def ffmpeg_floor(files) -> float:
    "Seconds for `ffmpeg -i FILE -f null -` over all files, one after the other."
    t0 = time.perf_counter()
    for f in files:
        subprocess.run(['ffmpeg', '-v', 'error', '-nostdin', '-i', str(f), '-f', 'null', '-'], check=True)
    return time.perf_counter() - t0


def make_long_file(path: Path, seconds: int) -> Path:
    "A 720p, 30 fps H.264 + 44.1 kHz stereo AAC mp4 of `seconds`, from ffmpeg's test sources."
    subprocess.run(['ffmpeg', '-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', f'testsrc2=size=1280x720:rate=30:duration={seconds}',
                    '-f', 'lavfi', '-i', f'sine=frequency=440:sample_rate=44100:duration={seconds}', '-ac', '2',
                    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', str(path)], check=True)
    return path


def time_prepare(source, out, cfg, workers) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    prepare(source, out, cfg, workers=workers, progress=False)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--videos', type=int, default=160, help='SynthM2M videos to generate and prepare')
    ap.add_argument('--long-seconds', type=int, default=60, help='length of the long 720p file')
    ap.add_argument('--image-size', type=int, default=224, help='frame size prepared (paper: 224)')
    ap.add_argument('--clips', type=int, default=8, help='clips per video (paper: 8)')
    ap.add_argument('--out', default='benchmarks/media_results.md', help='where to write the table')
    a = ap.parse_args(argv)
    if shutil.which('ffmpeg') is None: sys.exit('benchmarks/media.py needs the ffmpeg command line (make bench installs it)')
    cfg = MediaConfig(clips=a.clips, image_size=a.image_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth = tmp / 'synth'
        generate(synth, videos=a.videos, tracks=max(2, a.videos // 2), seed=0, progress=False)
        files = sorted((synth / 'videos').glob('*.mp4'))
        floor = ffmpeg_floor(files)
        rows.append(dict(data=f'SynthM2M ({len(files)} videos)', method='ffmpeg -f null (decode floor)', workers=1,
                         seconds=floor, files_per_s=len(files) / floor))
        for w in (1, 2):
            s = time_prepare(synth, tmp / f'cache{w}', cfg, w)
            rows.append(dict(data=f'SynthM2M ({len(files)} videos)', method='cmmixer prepare', workers=w, seconds=s, files_per_s=len(files) / s))
        long_dir = tmp / 'long' / 'videos'; long_dir.mkdir(parents=True)
        long = make_long_file(long_dir / 'long720p.mp4', a.long_seconds)
        floor = ffmpeg_floor([long])
        rows.append(dict(data=f'{a.long_seconds} s 720p H.264', method='ffmpeg -f null (decode floor)', workers=1, seconds=floor, files_per_s=1 / floor))
        for threads in (1, 2):
            t0 = time.perf_counter(); load_clips(long, MediaConfig(clips=a.clips, image_size=a.image_size, threads=threads))
            s = time.perf_counter() - t0
            rows.append(dict(data=f'{a.long_seconds} s 720p H.264', method=f'load_clips, {threads} decoder thread(s)', workers=1,
                             seconds=s, files_per_s=1 / s))
        for w in (1, 2):
            s = time_prepare(tmp / 'long', tmp / f'cache_long{w}', cfg, w)
            rows.append(dict(data=f'{a.long_seconds} s 720p H.264', method='cmmixer prepare', workers=w, seconds=s, files_per_s=1 / s))
    df = pd.DataFrame(rows)
    table = df.to_string(index=False, float_format=lambda x: f'{x:.3f}')
    load = os.getloadavg()[0]
    facts = (f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; '
             f'torch {torch.__version__}; K={a.clips}, image {a.image_size}px; measured {time.strftime("%Y-%m-%d")}')
    facts += f'; load average at the end: {load:.2f}'
    print(facts); print(table)
    Path(a.out).write_text(f'# benchmarks/media.py\n\n{facts}\n\n```\n{table}\n```\n')


if __name__ == '__main__':
    main()

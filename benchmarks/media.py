"""Media decoding benchmark: `cmmixer prepare` beside a full decode of the same files (issue 9, point 7).

The floor is `ffmpeg -threads 1 -i FILE -f null -`: one decoder thread decoding every frame and sample. `prepare`
(1 worker, 1 decoder thread, K clips at S px) decodes only what the model needs: the K frames, each from the last
keyframe at or before it (or by decoding on when that keyframe is already behind), skipping the non-reference frames
before it, and the audio up to the last of the K windows.

- Short files: SynthM2M (8 s, 96 px, 10 fps H.264 videos, AAC music tracks); prepare at 1 and 2 workers.
- Long files: 60 s 1280x720 30 fps H.264 (x264 veryfast) + 44.1 kHz stereo AAC, with a keyframe every 2 s
  (`-g 60 -keyint_min 60 -sc_threshold 0`, streaming-platform style) and every 10 s (`-g 300`).

Targets: ratio <= 0.3 (2 s keyframe interval), <= 1.0 (10 s), <= 0.75 (short files). Each timing is the best of
--repeats runs, floor and prepare interleaved, so that a job sharing the machine weighs on both alike. `decoded`
counts the video frames the decoder produced (`decode_frames(..., stats=)`; skipped frames not counted) against
the frames in the files.

    python benchmarks/media.py [--videos 160] [--long-seconds 60] [--repeats 2] [--quick] [--note TEXT]
        [--out benchmarks/media_results.md]

Needs the ffmpeg command line (`make bench` installs it with apt when missing).
"""
import argparse, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import pandas as pd
import torch

from cmmixer.media import MediaConfig, clip_times, decode_frames, probe
from cmmixer.cache import prepare
from cmmixer.synth_m2m import SynthConfig, generate


def ffmpeg_floor(files) -> float:
    "Seconds for `ffmpeg -threads 1 -i FILE -f null -` over all files, one after the other."
    t0 = time.perf_counter()
    for f in files:
        subprocess.run(['ffmpeg', '-v', 'error', '-nostdin', '-threads', '1', '-i', str(f), '-f', 'null', '-'], check=True)
    return time.perf_counter() - t0


def make_long_file(path: Path, seconds: int, gop: int) -> Path:
    "A 720p 30 fps H.264 (keyframe every `gop` frames, no scene-cut keyframes) + 44.1 kHz stereo AAC mp4."
    subprocess.run(['ffmpeg', '-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', f'testsrc2=size=1280x720:rate=30:duration={seconds}',
                    '-f', 'lavfi', '-i', f'sine=frequency=440:sample_rate=44100:duration={seconds}', '-ac', '2',
                    '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', str(gop), '-keyint_min', str(gop),
                    '-sc_threshold', '0', '-c:a', 'aac', '-shortest', str(path)], check=True)
    return path


def time_prepare(source, out, cfg, workers) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    prepare(source, out, cfg, workers=workers, progress=False)
    return time.perf_counter() - t0


def decoded_frames(files, cfg):
    "(frames decoded for the K clip times, frames in the files)."
    decoded = total = 0
    for f in files:
        v = probe(f)['video']; stats = {}
        decode_frames(f, clip_times(v['duration'], cfg.clips), cfg.image_size, 1, stats)
        decoded += stats['decoded']; total += v['frames'] or round(v['duration'] * v['fps'])
    return decoded, total


def measure(data, files, source, tmp, cfg, workers_list, repeats):
    "Rows: the floor and prepare at each worker count (best of `repeats`, interleaved), with ratios and decoded frames."
    best = {}
    for _ in range(repeats):
        for key, run in [('floor', lambda: ffmpeg_floor(files))] + \
                         [(w, lambda w=w: time_prepare(source, tmp / f'cache_{w}', cfg, w)) for w in workers_list]:
            best[key] = min(best.get(key, float('inf')), run())
    dec, total = decoded_frames(files, cfg)
    rows = [dict(data=data, method='ffmpeg -threads 1 -f null (floor)', workers=1, seconds=best['floor'], ratio=1.0, decoded=f'{total}/{total}')]
    for w in workers_list:
        rows.append(dict(data=data, method='cmmixer prepare, 1 decoder thread', workers=w, seconds=best[w],
                         ratio=best[w] / best['floor'], decoded=f'{dec}/{total}'))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--videos', type=int, default=160, help='SynthM2M videos to generate and prepare')
    ap.add_argument('--long-seconds', type=int, default=60, help='length of the long 720p files')
    ap.add_argument('--image-size', type=int, default=224, help='frame size prepared (paper: 224)')
    ap.add_argument('--clips', type=int, default=8, help='clips per video (paper: 8)')
    ap.add_argument('--repeats', type=int, default=2, help='timings per measurement; the best counts')
    ap.add_argument('--quick', action='store_true', help='48 short videos, 1 repeat')
    ap.add_argument('--out', default='benchmarks/media_results.md', help='where to write the table')
    ap.add_argument('--note', default='', help='a line written under the facts (say, other jobs sharing the machine)')
    a = ap.parse_args(argv)
    if a.quick: a.videos, a.repeats = min(a.videos, 48), 1
    if shutil.which('ffmpeg') is None: sys.exit('benchmarks/media.py needs the ffmpeg command line (make bench installs it)')
    cfg = MediaConfig(clips=a.clips, image_size=a.image_size, threads=1)
    load0, t_start, rows = os.getloadavg()[0], time.time(), []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth = tmp / 'synth'
        generate(synth, SynthConfig(videos=a.videos, tracks=max(2, a.videos // 2), seed=0), workers=1, progress=False)
        files = sorted((synth / 'videos').glob('*.mp4'))
        rows += measure(f'SynthM2M ({len(files)} videos, 8 s)', files, synth, tmp, cfg, (1, 2), a.repeats)
        for gop in (60, 300):
            src = tmp / f'long_g{gop}'; (src / 'videos').mkdir(parents=True)
            long = make_long_file(src / 'videos' / f'long720p_g{gop}.mp4', a.long_seconds, gop)
            rows += measure(f'{a.long_seconds} s 720p H.264, keyframe every {gop / 30:g} s', [long], src, tmp, cfg, (1,), a.repeats)
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f'{x:.3f}')
    load1 = os.getloadavg()[0]
    facts = (f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; '
             f'torch {torch.__version__}; K={a.clips}, image {a.image_size}px; best of {a.repeats}; '
             f'measured {time.strftime("%Y-%m-%d")} in {time.time() - t_start:.0f} s; load average {load0:.2f} at the start, {load1:.2f} at the end')
    if a.note: facts += f'\n\n{a.note}'
    print(facts); print(table)
    Path(a.out).write_text(f'# benchmarks/media.py\n\n{facts}\n\n```\n{table}\n```\n')


if __name__ == '__main__':
    main()

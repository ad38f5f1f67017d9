"""End-to-end: the `cmmixer` command on real generated media, as a user runs it (subprocess, exit codes, files)."""
import csv, json, os, shutil, signal, subprocess, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_main, CMMIXER, run_cli
from cmmixer.encode import write_media


def _tone(seconds, sr=16000, f=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    return np.repeat((0.3 * np.sin(2 * np.pi * f * t))[None], channels, 0).astype(np.float32)


def _frames(seconds, fps=10, h=48, w=64):
    n = int(seconds * fps)
    return (np.arange(n)[:, None, None, None] * 7 % 255 * np.ones((1, h, w, 3))).astype(np.uint8)


def test_help_lists_commands_and_options():
    p = run_cli('--help', check_rc=0)
    assert 'synth' in p.stdout and 'prepare' in p.stdout
    p = run_cli('synth', '--help', check_rc=0)
    for opt in ('--videos', '--tracks', '--seed'): assert opt in p.stdout
    p = run_cli('prepare', '--help', check_rc=0)
    for opt in ('--workers', '--clips', '--image_size', '--kind'): assert opt in p.stdout
    assert run_cli('frobnicate').returncode == 2


def test_synth_layout_and_determinism(small_synth, tmp_path):
    pairs = pd.read_csv(small_synth / 'pairs.csv', keep_default_na=False)
    assert list(pairs.columns)[:3] == ['video', 'track', 'offset'] and len(pairs) == 14
    assert all((small_synth / 'videos' / v).stat().st_size > 0 for v in pairs.video)
    assert all((small_synth / 'music' / t).exists() for t in pairs.track if t)
    assert (pairs.track == '').any(), 'some videos carry natural sound'
    again = tmp_path / 'again'
    run_cli('synth', again, '--videos', 14, '--tracks', 6, '--seed', 3, '--duration', 4, '--size', 64, '--workers', 1, '--quiet', check_rc=0)
    assert (again / 'pairs.csv').read_text() == (small_synth / 'pairs.csv').read_text()
    assert json.loads((again / 'synth.json').read_text()) == json.loads((small_synth / 'synth.json').read_text())


def test_synth_bad_parameter_fails_before_work(tmp_path):
    p = run_cli('synth', tmp_path / 'x', '--videos', 0)
    assert p.returncode == 2 and 'videos' in p.stderr
    assert not (tmp_path / 'x' / 'videos').exists()


def test_synth_task_writes_a_labelled_set_the_readers_and_prepare_take(tmp_path):
    "`cmmixer synth OUT --task esc50`: SynthM2M beside OUT, the ESC-50 stand-in in OUT, prepared into a labelled cache."
    from cmmixer.data import read_source
    from cmmixer.cache import Cache
    out = tmp_path / 'esc50'
    run_cli('synth', out, '--videos', 12, '--tracks', 4, '--seed', 1, '--duration', 3, '--size', 32, '--workers', 1,
            '--task', 'esc50', '--quiet', check_rc=0)
    recs = read_source(out)
    assert recs.kind == 'esc50' and len(recs) == 12 and (tmp_path / 'esc50.synthm2m' / 'synth.json').is_file()
    run_cli('prepare', out, tmp_path / 'cache', '--clips', 2, '--image_size', 32, '--workers', 1, '--quiet', check_rc=0)
    c = Cache(tmp_path / 'cache')
    assert c.meta['kind'] == 'esc50' and len(c.manifest) == 12 and c.classes == recs.classes
    bad = run_cli('synth', tmp_path / 'y', '--task', 'k700')
    assert bad.returncode == 2 and '--task' in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'y.synthm2m').exists()


def test_prepare_synth_end_to_end(small_synth, tmp_path):
    out = tmp_path / 'cache'
    p = run_cli('prepare', small_synth, out, '--clips', 4, '--image_size', 32, '--workers', 2, '--quiet', check_rc=0)
    man = pd.read_csv(out / 'manifest.csv')
    rej = pd.read_csv(out / 'rejects.csv')
    assert len(man) == 14 and len(rej) == 0
    frames = np.load(out / 'frames.npy', mmap_mode='r')
    fbank = np.load(out / 'fbank.npy', mmap_mode='r')
    assert frames.shape == (14, 4, 3, 32, 32) and frames.dtype == np.uint8
    assert fbank.shape[:3] == (14, 4, 128) and np.isfinite(np.asarray(fbank, dtype=np.float32)).all()
    stats = json.loads((out / 'stats.json').read_text())
    assert stats and 'fbank' in json.dumps(stats)
    # a second run is a no-op
    p = run_cli('prepare', small_synth, out, '--clips', 4, '--image_size', 32, '--workers', 2, '--quiet', check_rc=0)
    assert 'up to date' in p.stdout


def _bad_m2m(src, root):
    "An M2M-style folder with good videos from SynthM2M and one file of every bad kind."
    (root / 'videos').mkdir(parents=True); (root / 'music').mkdir()
    pairs = pd.read_csv(src / 'pairs.csv', keep_default_na=False).head(4)
    for v in pairs.video: shutil.copy(src / 'videos' / v, root / 'videos' / v)
    for t in set(pairs.track) - {''}: shutil.copy(src / 'music' / t, root / 'music' / t)
    (root / 'videos' / 'empty.mp4').write_bytes(b'')
    (root / 'videos' / 'notes.mp4').write_text('this is not a video\n' * 50)
    good = (root / 'videos' / pairs.video[0]).read_bytes()
    (root / 'videos' / 'truncated.mp4').write_bytes(good[: len(good) // 2])
    write_media(root / 'videos' / 'audio_only.mp4', audio=_tone(3))
    write_media(root / 'videos' / 'video_only.mp4', frames=_frames(3), fps=10)
    write_media(root / 'videos' / 'too_short.mp4', frames=_frames(0.4), fps=10, audio=_tone(0.4))
    bad = ['empty.mp4', 'notes.mp4', 'truncated.mp4', 'audio_only.mp4', 'video_only.mp4', 'too_short.mp4']
    rows = pairs[['video', 'track', 'offset']].to_dict('records') + [dict(video=b, track='', offset=0) for b in bad]
    pd.DataFrame(rows).to_csv(root / 'pairs.csv', index=False)
    return len(pairs), bad


def test_prepare_reports_every_bad_file_and_goes_on(small_synth, tmp_path):
    n_good, bad = _bad_m2m(small_synth, tmp_path / 'src')
    out = tmp_path / 'cache'
    p = run_cli('prepare', tmp_path / 'src', out, '--clips', 4, '--image_size', 32, '--workers', 2, '--quiet', check_rc=0)
    man, rej = pd.read_csv(out / 'manifest.csv'), pd.read_csv(out / 'rejects.csv')
    assert len(man) == n_good and len(rej) == len(bad), (man, rej)
    reasons = {Path(f).name: r for f, r in zip(rej.file, rej.reason)}
    assert set(reasons) == set(bad)
    assert 'empty' in reasons['empty.mp4']
    assert 'not a media file' in reasons['notes.mp4']
    assert 'truncated' in reasons['truncated.mp4'] or 'corrupt' in reasons['truncated.mp4']
    assert 'no video stream' in reasons['audio_only.mp4']
    assert 'no audio stream' in reasons['video_only.mp4']
    assert 'too short' in reasons['too_short.mp4']


def test_prepare_decodes_every_container_and_codec(tmp_path):
    "YouTube-8M-style folder (own audio is the pair) holding each container/codec the media chapter supports."
    root = tmp_path / 'yt'; root.mkdir()
    f, a = _frames(3), _tone(3, sr=44100, channels=2)
    write_media(root / 'h264.mp4', frames=f, fps=10, audio=a, sample_rate=44100)
    write_media(root / 'h264.mkv', frames=f, fps=10, audio=_tone(3, sr=48000), sample_rate=48000)
    write_media(root / 'vp9.webm', frames=f, fps=10, audio=a, sample_rate=44100)
    write_media(root / 'h264.mov', frames=f, fps=10, audio=_tone(3, sr=8000), sample_rate=8000)
    write_media(root / 'mpeg4.avi', frames=f, fps=10, audio=a, sample_rate=44100)
    write_media(root / 'portrait.mp4', frames=_frames(3, h=80, w=48), fps=10, audio=a, sample_rate=44100)
    pts = np.cumsum(np.r_[0, np.random.default_rng(0).uniform(0.03, 0.2, 24)])
    write_media(root / 'vfr.mp4', frames=_frames(2.5)[:25], pts=pts, audio=a, sample_rate=44100)
    out = tmp_path / 'cache'
    run_cli('prepare', root, out, '--kind', 'yt8m', '--clips', 4, '--image_size', 32, '--workers', 1, '--quiet', check_rc=0)
    man, rej = pd.read_csv(out / 'manifest.csv'), pd.read_csv(out / 'rejects.csv')
    assert len(rej) == 0, rej
    assert sorted(Path(v).name for v in man.video) == sorted(p.name for p in root.iterdir())


def test_prepare_resumes_after_kill(small_synth, tmp_path):
    out = tmp_path / 'cache'
    args = [str(a) for a in (CMMIXER, 'prepare', small_synth, out, '--clips', 8, '--image_size', 224, '--workers', 1, '--quiet')]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shards, t0 = out / 'shards', time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        if shards.exists() and len(list(shards.glob('*.npz'))) >= 3: break
        time.sleep(0.02)
    assert proc.poll() is None, 'prepare finished before it could be killed; the test needs a slower decode'
    proc.send_signal(signal.SIGKILL); proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in shards.glob('*.npz')}
    assert len(done) >= 3 and not (out / 'meta.json').exists()
    p = run_cli('prepare', small_synth, out, '--clips', 8, '--image_size', 224, '--workers', 1, '--quiet', check_rc=0)
    man, rej = pd.read_csv(out / 'manifest.csv'), pd.read_csv(out / 'rejects.csv')
    assert len(man) + len(rej) == 14 and len(man) == 14
    assert f"{len(done)} reused" in p.stdout, p.stdout


def test_prepare_bad_parameters_fail_before_work(small_synth, tmp_path):
    p = run_cli('prepare', small_synth, tmp_path / 'c', '--workers', 0)
    assert p.returncode == 2 and 'workers' in p.stderr and not (tmp_path / 'c').exists()
    p = run_cli('prepare', tmp_path / 'missing', tmp_path / 'c')
    assert p.returncode == 2 and 'source' in p.stderr
    p = run_cli('prepare', small_synth, tmp_path / 'c', '--clips', 0)
    assert p.returncode == 2 and 'clips' in p.stderr


def test_index_and_recommend_from_the_command_line(tmp_path):
    """cmmixer index / recommend (both directions, --plus/--minus, hyphenated options) on a tiny fine-tuned retriever: the
    first index and recommend as the installed command, the others through `cmmixer.cli.main` in this process."""
    from test_retrieval_e2e import _checkpoint
    ckpt, media = _checkpoint(tmp_path)
    lib = media / 'music'
    p = run_cli('index', lib, '--checkpoint', ckpt, '--out', tmp_path / 'idx', '--quiet', check_rc=0)
    assert 'built' in p.stdout
    assert 'up to date' in run_main('index', lib, '--checkpoint', ckpt, '--out', tmp_path / 'idx', '--quiet', check_rc=0).stdout
    video = sorted((media / 'videos').glob('*.mp4'))[0]
    tracks = sorted(lib.iterdir())
    p = run_cli('recommend', video, '--index', tmp_path / 'idx', '--top', 3, check_rc=0)
    rows = [l.split() for l in p.stdout.strip().splitlines()[1:]]
    assert [r[0] for r in rows] == ['1', '2', '3'] and all(r[1] in {t.name for t in tracks} for r in rows)
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    p = run_main('recommend', video, '--index', tmp_path / 'idx', '--top', 3, '--plus', tracks[1], '--minus', tracks[1], check_rc=0)
    assert [l.split()[1] for l in p.stdout.strip().splitlines()[1:]] == [r[1] for r in rows]   # plus and minus cancel
    run_main('index', media / 'videos', '--checkpoint', ckpt, '--out', tmp_path / 'vidx', '--modality', 'video', '--quiet', check_rc=0)
    p = run_main('recommend', tracks[0], '--video-index', tmp_path / 'vidx', '--top', 2, check_rc=0)
    assert len(p.stdout.strip().splitlines()) == 3 and '.mp4' in p.stdout
    p = run_main('recommend', video, '--top', 3)
    assert p.returncode == 2 and 'index' in p.stderr
    p = run_main('recommend', video, '--index', tmp_path / 'idx', '--top', 0)
    assert p.returncode == 2 and 'top' in p.stderr

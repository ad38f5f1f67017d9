"""Every command against every damage a user's files can have: one line that names the file and the reason, the
right exit status, and nothing changed in the index or cache the command was pointed at. Table-driven: each case is
(name, command line, exit status, text the one line must contain, folder that must stay unchanged)."""
import os, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest

from conftest import CMMIXER, run_cli, run_main
from cmmixer.encode import write_media
from cmmixer.indexing import INDEX_FILES

DAMAGES = ('empty', 'half', 'delete')


def snapshot(folder) -> dict:
    "Every file under `folder` (relative path -> bytes)."
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def damage(path: Path, how: str):
    b = path.read_bytes()
    if how == 'empty': path.write_bytes(b'')
    elif how == 'half': path.write_bytes(b[:len(b) // 2])
    else: path.unlink()


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    "A fine-tuned tiny retriever, a music index, a video index, a small cache, and bad query files."
    from test_retrieval_e2e import _checkpoint
    root = tmp_path_factory.mktemp('damage')
    ckpt, media = _checkpoint(root)
    run_cli('index', media / 'music', '--checkpoint', ckpt, '--out', root / 'idx', '--quiet', check_rc=0)
    run_cli('index', media / 'videos', '--checkpoint', ckpt, '--out', root / 'vidx', '--modality', 'video', '--quiet', check_rc=0)
    bad = root / 'bad'; bad.mkdir()
    video = sorted((media / 'videos').glob('*.mp4'))[0]
    (bad / 'empty.mp4').write_bytes(b'')
    (bad / 'notes.mp4').write_text('this is not a video\n' * 40)
    (bad / 'truncated.mp4').write_bytes(video.read_bytes()[:len(video.read_bytes()) // 3])
    write_media(bad / 'audio_only.m4a', audio=np.zeros((1, 32000), np.float32), sample_rate=16000)
    return dict(root=root, ckpt=ckpt, media=media, video=video, track=sorted((media / 'music').iterdir())[0], bad=bad)


def one_line(p) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in p.stderr, p.stderr
    return lines[0]


def check_case(args, rc, contains, unchanged=None, process=False):
    "One case: in this process through `cmmixer.cli.main` (fast), or with `process` through the installed command."
    before = snapshot(unchanged) if unchanged is not None else None
    p = run_cli(*args) if process else run_main(*args)
    line = one_line(p)
    assert p.returncode == rc, (args, p.returncode, p.stderr)
    for c in contains: assert str(c) in line, (c, line)
    if unchanged is not None: assert snapshot(unchanged) == before, f"{unchanged} changed"


@pytest.mark.parametrize('name', INDEX_FILES)
@pytest.mark.parametrize('how', DAMAGES)
def test_recommend_on_a_damaged_index(world, tmp_path, name, how):
    idx = tmp_path / 'idx'; shutil.copytree(world['root'] / 'idx', idx)
    damage(idx / name, how)
    want = 'no index.json' if (name, how) == ('index.json', 'delete') else name
    process = (name, how) in (('embeddings.npy', 'half'), ('index.json', 'delete'))     # these two as the real command
    check_case(['recommend', world['video'], '--index', idx], 2, ['--index' if want == 'no index.json' else '', want], idx,
               process=process)


QUERIES = [('empty.mp4', 'empty file'), ('notes.mp4', 'not a media file'), ('truncated.mp4', ''), ('audio_only.m4a', 'no video stream')]


@pytest.mark.parametrize('query,reason', QUERIES)
@pytest.mark.parametrize('as_plus', [False, True])
def test_bad_query_files(world, query, reason, as_plus):
    bad = world['bad'] / query
    args = (['recommend', world['video'], '--index', world['root'] / 'idx', '--plus', bad] if as_plus
            else ['recommend', bad, '--index', world['root'] / 'idx'])
    if as_plus and query == 'audio_only.m4a': return          # an audio file is a valid --plus (through the music tower)
    check_case(args, 2, [bad, reason], world['root'] / 'idx', process=(query, as_plus) == ('truncated.mp4', False))


def test_wrong_index_kind(world):
    r = world['root']
    check_case(['recommend', world['video'], '--index', r / 'vidx'], 2, ['is a video index', 'but a music index'], r / 'vidx')
    check_case(['recommend', world['track'], '--video-index', r / 'idx'], 2, ['is a music index', 'but a video index'], r / 'idx')


def test_nonexistent_paths(world, tmp_path):
    r, missing = world['root'], tmp_path / 'missing'
    check_case(['recommend', missing / 'v.mp4', '--index', r / 'idx'], 2, ['query:', 'is not a file'], process=True)
    check_case(['recommend', world['video'], '--index', missing], 2, ['--index', 'no index.json'])
    check_case(['recommend', world['video'], '--index', r / 'idx', '--checkpoint', missing], 2, ['--checkpoint', 'not a retriever checkpoint'])
    check_case(['index', missing, '--checkpoint', world['ckpt'], '--out', tmp_path / 'o'], 2, ['music_dir:', 'is not a folder'])
    check_case(['index', world['media'] / 'music', '--checkpoint', missing, '--out', tmp_path / 'o'], 2, ['--checkpoint'])
    check_case(['prepare', missing, tmp_path / 'c'], 2, ['source:', 'is not a folder'])
    assert not (tmp_path / 'o').exists() and not (tmp_path / 'c').exists()


def test_other_settings_are_refused_not_rebuilt(world, tmp_path):
    r = world['root']
    check_case(['index', world['media'] / 'music', '--checkpoint', world['ckpt'], '--out', r / 'idx', '--span_s', '0.7'],
               2, ['span_s', '-> 0.7', '--rebuild'], r / 'idx')
    cache = tmp_path / 'cache'
    src = world['media'] / 'src'
    if not src.exists():                                          # an M2M-style folder of the tiny media
        (src / 'videos').mkdir(parents=True); shutil.copytree(world['media'] / 'music', src / 'music')
        for v in sorted((world['media'] / 'videos').glob('*.mp4')): shutil.copy(v, src / 'videos' / v.name)
        tracks = sorted(p.name for p in (src / 'music').iterdir())
        (src / 'pairs.csv').write_text('video,track\n' + ''.join(f"{v.name},{tracks[i % len(tracks)]}\n"
                                       for i, v in enumerate(sorted((src / 'videos').glob('*.mp4')))))
    run_cli('prepare', src, cache, '--clips', 2, '--image_size', 16, '--workers', 1, '--quiet', check_rc=0)
    check_case(['prepare', src, cache, '--clips', 3, '--image_size', 16, '--workers', 1], 2, ['clips: 2 -> 3', '--rebuild'], cache)
    p = run_cli('prepare', src, cache, '--clips', 3, '--image_size', 16, '--workers', 1, '--quiet', '--rebuild', check_rc=0)
    assert 'prepared' in p.stdout


def test_version_and_usage_errors():
    import cmmixer
    assert run_cli('--version', check_rc=0).stdout.strip() == f'cmmixer {cmmixer.__version__}'
    check_case(['prepare', 'a', 'b', '--clips', 'many'], 2, ['--clips', 'invalid int'], process=True)
    check_case(['index', 'a', '--frobnicate'], 2, ['unrecognized arguments'])
    p = run_cli('recommend', 'missing.mp4', '--index', 'nowhere', '--debug')
    assert p.returncode == 1 and 'Traceback' in p.stderr                 # --debug shows the traceback


@pytest.mark.parametrize('delay', [0.1, 0.5, 1.5, 3.0])
def test_interrupt_at_start_is_one_line(world, tmp_path, delay):
    "Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while the command imports or its workers boot."
    src = world['media'] / 'src'
    if not src.exists(): pytest.skip('needs the M2M folder made by test_other_settings_are_refused_not_rebuilt')
    args = [str(CMMIXER), 'prepare', str(src), str(tmp_path / 'c'), '--clips', '2', '--image_size', '16', '--workers', '2', '--quiet']
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    if p.returncode == 0: return                                     # finished before the signal: nothing to check
    assert p.returncode == 130, (p.returncode, err)
    assert err.strip().splitlines() == ['cmmixer prepare: interrupted; run the same command again to resume'], err

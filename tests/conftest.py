"""End-to-end test helpers: run the installed `cmmixer` command the way a user would (or its `main` in this process).

Two tiers: `make test` runs every test not marked `slow` (each under a minute, the whole suite in minutes);
`make test-slow` runs the `slow` ones: whole-table pipelines, multi-process runs, papermill refusals beyond one per
chapter and JupyterLab in a browser. CI runs both."""
import contextlib, io, subprocess, sys
from pathlib import Path
import pytest

CMMIXER = Path(sys.executable).parent / 'cmmixer'


def pytest_addoption(parser):
    parser.addoption('--require-browser', action='store_true',
                     help='fail the browser tests when Chromium is missing instead of skipping them (CI)')


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a pipeline-level test over a minute; `make test-slow` runs it (CI too)')


def run_main(*args, check_rc=None):
    "`cmmixer ARGS` through `cmmixer.cli.main` in this process (no interpreter start): CompletedProcess-like result."
    from cmmixer.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: rc = main(list(map(str, args)))
        except SystemExit as e: rc = e.code if isinstance(e.code, int) else 1     # argparse's usage errors
    p = subprocess.CompletedProcess(['cmmixer', *map(str, args)], rc, out.getvalue(), err.getvalue())
    if check_rc is not None:
        assert rc == check_rc, f"cmmixer {' '.join(map(str, args))} -> {rc}\n{p.stdout}\n{p.stderr}"
    return p


def run_cli(*args, timeout=600, check_rc=None):
    "Run `cmmixer ARGS` in a subprocess; returns CompletedProcess (text). Asserts the exit code when given."
    p = subprocess.run([str(CMMIXER), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check_rc is not None:
        assert p.returncode == check_rc, f"cmmixer {' '.join(map(str, args))} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def make_synth(out, videos, tracks, seed, duration=3, size=32):
    "A SynthM2M benchmark in `out` (M2M layout) written by the `cmmixer synth` command; returns `out`."
    run_cli('synth', out, '--videos', videos, '--tracks', tracks, '--seed', seed, '--duration', duration, '--size', size,
            '--workers', 2, '--quiet', check_rc=0)
    return out


@pytest.fixture(scope='session')
def small_synth(tmp_path_factory):
    "A small SynthM2M benchmark generated once through the command line."
    return make_synth(tmp_path_factory.mktemp('synth') / 'synth', 14, 6, 3, duration=4, size=64)

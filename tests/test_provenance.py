"""Provenance of the committed results (chapters 00d_provenance, 09i_results): every file under results/ has a sound row
in results/MANIFEST.csv, every number of a README table is a value of the CSV it names, and the targets `make results`
builds are the Makefile's own table targets, with the same options."""
import re, shlex, subprocess
from pathlib import Path

import pytest

from cmmixer.provenance import check_manifest, readme_mismatches
from cmmixer.tables.results import TARGETS

REPO = Path(__file__).resolve().parents[1]


def test_manifest_names_every_result():
    assert check_manifest(REPO / 'results') == []


def test_every_target_is_current(tmp_path):
    """Every committed table comes from today's code: `make status` (on a fresh checkout: no runs) finds each target's
    manifest rows made by the code digest its code has now. A change to what a result depends on fails here until
    `make results` rebuilt what went stale."""
    from cmmixer.tables.core import TableRun
    from cmmixer.tables.results import status
    st = status(how=TableRun(runs=str(tmp_path / 'runs'), results=str(REPO / 'results')))
    stale = st[st.state != 'current']
    assert not len(stale), stale[['target', 'state', 'why']].to_string()


def test_readme_tables_show_their_csvs():
    assert readme_mismatches((REPO / 'README.md').read_text(), REPO) == []


MAKE_VARS = {'table2-yt8m': ('table2', ['T2_DATA=synth-yt8m'])}


def make_options(target: str) -> dict:
    "The options of the `cmmixer run` line that `make -n TARGET` prints, as a dict (flags as True)."
    name, extra = MAKE_VARS.get(target, (target, []))
    out = subprocess.run(['make', '-n', name, *extra], cwd=REPO, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if 'cmmixer run' in l][0]
    words = shlex.split(line.split('cmmixer run', 1)[1])
    opts, i = {'table': words[0]}, 1
    while i < len(words):
        key = words[i].lstrip('-')
        if i + 1 < len(words) and not words[i + 1].startswith('--'):
            opts[key], i = words[i + 1], i + 2
        else:
            opts[key], i = True, i + 1
    return opts


@pytest.mark.parametrize('target', [t.name for t in TARGETS])
def test_targets_are_the_makefiles(target):
    t = [t for t in TARGETS if t.name == target][0]
    opts = make_options(target)
    assert opts.pop('table') == t.table
    opts.pop('verdict', None)                                         # printing only
    want = dict(scale=t.scale, data=t.data, seeds=str(t.seeds), **{k: str(v) for k, v in t.options.items()})
    defaults = dict(scale='cpu', data='synth', seeds='3')             # `cmmixer run`'s defaults
    assert {**defaults, **opts} == want


def test_status_lists_every_target():
    from conftest import CMMIXER
    p = subprocess.run([CMMIXER, 'status'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    for t in TARGETS:
        assert re.search(rf"^\s*{re.escape(t.name)}\s+(current|stale|missing)\s", p.stdout, re.M), (t.name, p.stdout)
    assert 'targets to rebuild' in p.stdout
    bad = subprocess.run([CMMIXER, 'status', '--only', 'table9'], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and 'table9' in bad.stderr

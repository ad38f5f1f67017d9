"""The chapters as a reader runs them: JupyterLab (headless, a free port, a random token) in headless Chromium.

The retrieval chapter is opened, a cell setting a tiny experiment is inserted right after its `parameters` cell (as
papermill injects one), and Run All is clicked in the Run menu; once every code cell has run and the kernel is idle,
the page must show no error, the results as HTML tables, the run's figure as an image and its progress as widgets that
reached 100 %. The recommend chapter must also run cleanly, and let a reader listen: the query video and the top
tracks as players beside their scores. Nothing may be written under nbs/ (autosave is off, checkpoints go to a
temporary folder). Screenshots go to the test's folder and to runs/jupyterlab/ (their paths printed).

What counts as an error: an output of type error, or a traceback printed on stderr. A tqdm bar on stderr fails too
(progress must be a widget in JupyterLab); any other stderr (a warning) is allowed and printed in the test's log."""
import json, os, re, secrets, shutil, signal, subprocess, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser import chromium, require_browser
from conftest import make_synth

pytestmark = pytest.mark.slow         # `make test-slow` (CI: with --require-browser); about 75 s on 2 shared cores

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
SHOTS = ROOT / 'runs' / 'jupyterlab'
JUPYTER = Path(sys.executable).parent / 'jupyter'
RUN_LIMIT_S = 600                     # Run All of one chapter, at most (10-25 s each here, on 2 shared cores)

# JupyterLab's user settings for the test: nothing saved on its own, nothing fetched from the network, every cell in
# the page (windowing off, so the checks see every output; a reader scrolling sees the same).
SETTINGS = {
    '@jupyterlab/docmanager-extension/plugin': {'autosave': False},
    '@jupyterlab/apputils-extension/notification': {'fetchNews': 'false', 'checkForUpdates': False},
    '@jupyterlab/extensionmanager-extension/plugin': {'enabled': False},
    '@jupyterlab/notebook-extension/tracker': {'windowingMode': 'none'},
}

# The notebook panel of the path arguments[0] (null until the app, the panel and its document are ready).
PANEL = """
const app = window.jupyterapp;
const panel = app && Array.from(app.shell.widgets('main')).find(w => w.context && w.context.path === arguments[0]);
if (!panel || !panel.context.isReady) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const code = panel.content.widgets.filter(c => c.model.type === 'code');
"""

# Where a run stands: the kernel's status, each code cell's count and state, the outputs (long data left out).
STATE = PANEL + """
const text = t => Array.isArray(t) ? t.join('') : (t || '');
return {kernel: kernel ? kernel.status : 'none', cells: code.map(c => ({
  source: c.model.sharedModel.getSource(), count: c.model.executionCount, state: c.model.executionState,
  outputs: c.model.outputs.toJSON().map(o => ({type: o.output_type, name: o.name || '', text: text(o.text),
    ename: o.ename || '', evalue: o.evalue || '', traceback: (o.traceback || []).join('\\n'),
    mimes: Object.keys(o.data || {})}))}))};
"""

# Insert a code cell with source arguments[1] right after the cell tagged `parameters`, tagged `injected-parameters`.
INJECT = PANEL + """
const done = arguments[arguments.length - 1];
const nb = panel.content;
const at = nb.widgets.findIndex(c => (c.model.getMetadata('tags') || []).includes('parameters'));
if (at < 0) { done('no cell tagged parameters'); return; }
nb.activeCellIndex = at;
app.commands.execute('notebook:insert-cell-below').then(() => {
  nb.activeCell.model.sharedModel.setSource(arguments[1]);
  nb.activeCell.model.setMetadata('tags', ['injected-parameters']);
  done(nb.activeCellIndex === at + 1 && nb.activeCell.model.type === 'code' ? 'ok' : 'inserted elsewhere');
}, e => done(String(e)));
"""

# What the reader sees in one code cell's outputs (arguments[1]: its index among the code cells).
SEEN = PANEL + """
const node = code[arguments[1]].node;
const all = sel => [...node.querySelectorAll(sel)];
const src = e => e.getAttribute('src') || (e.querySelector('source[src]') || e).getAttribute('src') || '';
return {
  tables: all('.jp-OutputArea-output.jp-RenderedHTMLCommon table').map(t => t.innerText),
  images: all('.jp-OutputArea-output img').map(i => ({complete: i.complete, width: i.naturalWidth})),
  widgets: all('.jp-OutputArea-output .widget-hbox').filter(w => w.querySelector('.widget-hprogress')).map(w => {
    const bar = w.querySelector('.widget-hprogress .progress-bar');
    return {text: w.innerText.replace(/\\s+/g, ' ').trim(), width: bar.style.width, classes: bar.className};}),
  raw_widgets: all('.jp-OutputArea-output pre').map(p => p.innerText)
    .filter(t => /^(HBox|FloatProgress)\\(/.test(t)),
  media: all('.jp-OutputArea-output video, .jp-OutputArea-output audio').map(m => ({tag: m.tagName.toLowerCase(),
    src: src(m).slice(0, 30), ready: m.readyState, duration: m.duration, error: m.error ? m.error.code : null,
    row: (m.closest('tr') || m.parentElement).innerText.replace(/\\s+/g, ' ').trim()})),
};
"""

TQDM_TEXT = re.compile(r'\d+%\|')                  # a tqdm bar drawn as text: progress NOT shown as a widget
ANSI = re.compile(r'\x1b\[[0-9;]*m')


@dataclass
class Lab:
    url: str
    token: str
    log: Path


def snapshot(folder: Path) -> dict:
    "Every path under `folder` (hidden ones too) with its mtime and size."
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.rglob('*'))}


def git_status(*paths):
    "Porcelain status of `paths` (untracked files included), or None outside a git checkout."
    if not (ROOT / '.git').exists(): return None
    return subprocess.run(['git', '-C', str(ROOT), 'status', '--porcelain', '--untracked-files=all', '--', *paths],
                          capture_output=True, text=True, timeout=60).stdout


def changes(before: dict, after: dict) -> list:
    return [f'{k}: {"new" if k not in before else "gone" if k not in after else "changed"}'
            for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def write_settings(folder: Path):
    for plugin, values in SETTINGS.items():
        path = folder / f'{plugin}.jupyterlab-settings'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def kernels_of(runtime: Path) -> list:
    "Pids of the processes (kernels) whose command line names a file of `runtime` (this test's runtime folder)."
    out = []
    for proc in Path('/proc').iterdir():
        if not proc.name.isdigit(): continue
        try: cmd = (proc / 'cmdline').read_bytes().decode(errors='replace')
        except OSError: continue
        if str(runtime) in cmd: out.append(int(proc.name))
    return out


def stop_lab(proc: subprocess.Popen, lab: Lab|None, runtime: Path) -> list:
    "Shut the server down (its kernels with it), by force after 20 s; kill any kernel left. Returns those left."
    if lab is not None:
        auth = {'Authorization': f'token {lab.token}'}
        req = urllib.request.Request(f'{lab.url}api/shutdown', method='POST', headers=auth)
        try: urllib.request.urlopen(req, timeout=10).close()
        except OSError: pass
    try: proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    left = kernels_of(runtime)
    for pid in left:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    return left


@contextmanager
def jupyterlab(tmp: Path):
    "JupyterLab serving the project on a free localhost port with a random token, its state kept under `tmp`."
    dirs = {k: tmp / k.lower() for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_DATA_DIR', 'JUPYTER_RUNTIME_DIR',
                                         'JUPYTERLAB_SETTINGS_DIR', 'JUPYTERLAB_WORKSPACES_DIR', 'IPYTHONDIR')}
    for d in dirs.values(): d.mkdir(parents=True)
    write_settings(dirs['JUPYTERLAB_SETTINGS_DIR'])
    env = dict(os.environ, **{k: str(v) for k, v in dirs.items()})
    token, runtime = secrets.token_hex(16), dirs['JUPYTER_RUNTIME_DIR']
    args = [str(JUPYTER), 'lab', '--no-browser', '--ServerApp.ip=127.0.0.1', '--ServerApp.port=0',
            f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={ROOT}',
            '--LabApp.expose_app_in_browser=True',                  # window.jupyterapp: the notebook's model
            f'--FileCheckpoints.checkpoint_dir={tmp / "checkpoints"}',   # not nbs/.ipynb_checkpoints/
            '--LabApp.extension_manager=readonly']                  # no PyPI queries
    if os.geteuid() == 0: args.append('--allow-root')      # CI containers
    log = tmp / 'jupyterlab.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    lab = None
    try:
        info, deadline = runtime / f'jpserver-{proc.pid}.json', time.monotonic() + 90
        while not info.is_file():
            assert proc.poll() is None, f'JupyterLab exited ({proc.returncode}):\n{log.read_text()[-3000:]}'
            assert time.monotonic() < deadline, f'JupyterLab did not start in 90 s:\n{log.read_text()[-3000:]}'
            time.sleep(0.5)
        time.sleep(0.5)                                        # the file is written at once; read it whole
        lab = Lab(json.loads(info.read_text())['url'], token, log)
        yield lab
    finally:
        left = stop_lab(proc, lab, runtime)
        assert not left, f'kernels left running after the server stopped (killed): {left}'


def wait_for(driver, script, *args, timeout=120, what='', every=0.5):
    "Poll `script` until it returns something truthy; its last value (AssertionError naming `what` on timeout)."
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value: return value
        assert time.monotonic() < deadline, f'{what}: not after {timeout} s'
        time.sleep(every)


@contextmanager
def notebook(driver, lab: Lab, path: str):
    "`path` opened alone in JupyterLab (workspace reset), its kernel idle; its kernel shut down at the end."
    driver.get(f'{lab.url}lab/tree/{path}?reset&token={lab.token}')
    try:
        wait_for(driver, PANEL + "return kernel && kernel.status === 'idle';", path, timeout=120,
                 what=f'{path}: the notebook open with an idle kernel')
        driver.execute_script('window.jupyterapp.shell.collapseLeft()')      # the file browser closed: wider outputs
        yield
    finally:                                                                   # the next chapter gets the CPU
        stop = PANEL + "panel.sessionContext.shutdown().then(() => arguments[1](true), () => arguments[1](false));"
        try: driver.execute_async_script(stop, path)
        except Exception as e: print(f'{path}: could not shut its kernel down: {e}')


def click_run_all(driver):
    "The Run menu, then Run All Cells, clicked as a reader would."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    menu = [m for m in driver.find_elements(By.CSS_SELECTOR, '.lm-MenuBar-item') if m.text.strip() == 'Run']
    assert menu, 'no Run menu in the menu bar'
    menu[0].click()
    item = WebDriverWait(driver, 10).until(EC.element_to_be_clickable(
        (By.CSS_SELECTOR, 'li.lm-Menu-item[data-command="runmenu:run-all"]')))   # its label: Run All Cells
    assert item.text.strip() == 'Run All Cells', item.text
    item.click()


def errors_of(state: dict) -> list:
    "Error outputs and tracebacks on stderr, one text each."
    out = []
    for i, c in enumerate(state['cells']):
        for o in c['outputs']:
            if o['type'] == 'error':
                trace = ANSI.sub('', o['traceback'])[-2000:]
                out.append(f'cell {i} ({c["source"][:60]!r}): {o["ename"]}: {o["evalue"]}\n{trace}')
            elif o['name'] == 'stderr' and 'Traceback (most recent call last)' in o['text']:
                out.append(f'cell {i} ({c["source"][:60]!r}) printed a traceback:\n{o["text"][-2000:]}')
    return out


def run_all(driver, lab: Lab, path: str, timeout=RUN_LIMIT_S) -> dict:
    "Click Run All and wait until every code cell has run and the kernel is idle; the final state. Fails on an error."
    click_run_all(driver)
    deadline, t0 = time.monotonic() + timeout, time.monotonic()
    while True:
        time.sleep(1)
        state = driver.execute_script(STATE, path)
        assert state['kernel'] not in ('dead', 'restarting', 'autorestarting'), \
            f'{path}: the kernel died ({state["kernel"]}); server log:\n{lab.log.read_text()[-3000:]}'
        busy = state['kernel'] != 'idle' or any(c['state'] == 'running' for c in state['cells'])
        errors = errors_of(state)
        if errors and not busy: pytest.fail(f'{path}: Run All stopped on an error:\n' + '\n'.join(errors))
        unrun = [i for i, c in enumerate(state['cells']) if c['source'].strip() and c['count'] is None]
        if not busy and not unrun: break
        assert time.monotonic() < deadline, (f'{path}: Run All not finished after {timeout} s (kernel '
                                             f'{state["kernel"]}, cells not run: {unrun[:10]}); errors: {errors}')
    print(f'{path}: Run All took {time.monotonic() - t0:.1f} s')
    return state


def stderr_of(state: dict) -> list:
    "(cell, text) of every stderr stream output."
    return [(i, o['text']) for i, c in enumerate(state['cells']) for o in c['outputs'] if o['name'] == 'stderr']


def check_clean(path: str, state: dict):
    "No error; stderr without a traceback and without progress drawn as text (a bar must be a widget)."
    assert not errors_of(state), '\n'.join(errors_of(state))
    text_bars = [(i, t[:200]) for i, t in stderr_of(state) if TQDM_TEXT.search(t)]
    assert not text_bars, f'{path}: progress printed as text on stderr, not shown as a widget: {text_bars}'
    for i, t in stderr_of(state): print(f'{path}: stderr of code cell {i} (allowed, not an error): {t.strip()[:300]}')


def cell_index(state: dict, needle: str) -> int:
    found = [i for i, c in enumerate(state['cells']) if needle in c['source']]
    assert found, f'no code cell contains {needle!r}'
    return found[0]


def screenshot(driver, path: str, cell: int, name: str, out: Path) -> Path:
    "Scroll code cell `cell`'s outputs into view and save the page as `out/name`, copied to runs/jupyterlab/."
    driver.execute_script(PANEL + "code[arguments[1]].node.scrollIntoView({block: 'start'});", path, cell)
    time.sleep(0.5)
    shot = out / name
    driver.save_screenshot(str(shot))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SHOTS / name)
    print(f'screenshot: {shot} (copy: {SHOTS / name})')
    return shot


@pytest.fixture(scope='module')
def lab_browser(tmp_path_factory, request):
    "JupyterLab and Chromium, shared by this file's tests; asserts at the end that nothing was written under nbs/."
    require_browser(request)
    tmp = tmp_path_factory.mktemp('jupyterlab')
    before, git_before = snapshot(NBS), git_status('nbs')
    with jupyterlab(tmp / 'lab') as lab, chromium(tmp / 'profile', ['--window-size=1400,1300']) as driver:
        yield lab, driver, tmp
        severe = [e['message'][:300] for e in driver.get_log('browser') if e['level'] == 'SEVERE']
        for m in severe: print(f'browser console (SEVERE): {m}')
    written = changes(before, snapshot(NBS))
    assert not written, f'JupyterLab or the chapters wrote under nbs/: {written[:20]}'
    assert git_status('nbs') == git_before, f'git status of nbs/ changed:\n{git_before}\n->\n{git_status("nbs")}'


def test_retrieval_chapter_in_jupyterlab(lab_browser, tmp_path):
    lab, driver, _ = lab_browser
    path = 'nbs/04_retrieval.ipynb'
    with ThreadPoolExecutor(1) as pool:
        data = pool.submit(make_synth, tmp_path / 'tiny', 40, 14, 5)        # made while JupyterLab loads
        with notebook(driver, lab, path):
            params = '\n'.join(["scale = 'smoke'", f"data = {str(data.result(600))!r}", 'epochs = 1',
                                'finetune_epochs = 4', f"runs = {str(tmp_path / 'runs')!r}",
                                f"data_root = {str(tmp_path / 'data')!r}"])
            assert driver.execute_async_script(INJECT, path, params) == 'ok'
            state = run_all(driver, lab, path)
            check_retrieval(driver, path, state, tmp_path)


def check_retrieval(driver, path: str, state: dict, out: Path):
    "The experiment's progress as widgets at 100 %, its results as an HTML table, its figure once; screenshots."
    check_clean(path, state)
    run = cell_index(state, 'result = run(experiment')
    seen = driver.execute_script(SEEN, path, run)
    assert not seen['raw_widgets'], f'progress widgets not rendered (shown as text): {seen["raw_widgets"][:3]}'
    bars = seen['widgets']
    print(f'{path}: progress widgets of the experiment cell: {[b["text"] for b in bars]}')
    assert len(bars) >= 4, f'expected progress widgets for prepare, pre-train, fine-tune and embed, got {bars}'
    done = lambda b: b['width'] == '100%' and ': 100%' in b['text'] and 'success' in b['classes']   # green, full
    unfinished = [b for b in bars if not done(b)]
    assert not unfinished, f'progress bars short of 100 %: {unfinished}'
    assert any('R@1' in t for t in seen['tables']), f'the results table is not rendered as HTML: {seen["tables"]}'
    figure = cell_index(state, 'plot_record(result)')
    images = driver.execute_script(SEEN, path, figure)['images']
    assert len(images) == 1 and images[0]['complete'] and images[0]['width'] > 0, f'the figure, once: {images}'
    screenshot(driver, path, run, '04_retrieval_experiment.png', out)
    screenshot(driver, path, figure, '04_retrieval_figure.png', out)


PLAYERS_MISSING = ("04a_recommend has no cell showing the ranking as players yet (a call of "
                   "`show_recommendations(rec, query)`: the query video and the top tracks' excerpts as "
                   "IPython.display Video/Audio beside rank, file and score); the chapter itself ran cleanly")


def test_recommend_chapter_in_jupyterlab(lab_browser, tmp_path):
    lab, driver, _ = lab_browser
    path = 'nbs/04a_recommend.ipynb'
    with notebook(driver, lab, path):
        check_recommend(driver, path, run_all(driver, lab, path), tmp_path)


def check_recommend(driver, path: str, state: dict, out: Path):
    "The recommend chapter ran clean, its ranking a table, then its players (xfail while it has none)."
    check_clean(path, state)
    ranking = cell_index(state, 'rec = recommend(')
    tables = driver.execute_script(SEEN, path, ranking)['tables']
    assert any('score' in t and 'track' in t for t in tables), f'the ranking not rendered as an HTML table: {tables}'
    calls = [i for i, c in enumerate(state['cells'])
             if 'show_recommendations(' in c['source'] and 'def show_recommendations' not in c['source']]
    if not calls:
        screenshot(driver, path, ranking, '04a_recommend_ranking.png', out)
        pytest.xfail(PLAYERS_MISSING)
    players = calls[0]
    loaded = PANEL + """return [...code[arguments[1]].node.querySelectorAll('video, audio')]
        .every(m => m.readyState >= 1 || m.error);"""
    wait_for(driver, loaded, path, players, timeout=30, what=f'{path}: the players loaded their media')
    media = driver.execute_script(SEEN, path, players)['media']
    videos, audios = [m for m in media if m['tag'] == 'video'], [m for m in media if m['tag'] == 'audio']
    print(f'{path}: players: {len(videos)} video(s), {len(audios)} audio: {[a["row"] for a in audios]}')
    assert len(videos) == 1 and videos[0]['src'].startswith('data:video/'), f'the query video as a player: {videos}'
    assert len(audios) >= 3 and all(a['src'].startswith('data:audio/') for a in audios), f'the top tracks: {audios}'
    broken = [m for m in media if m['error'] is not None or not (m['duration'] or 0) > 0]
    assert not broken, f'players whose media Chromium cannot play: {broken}'
    no_score = [a['row'] for a in audios if not re.search(r'\S+\.\w{2,4}\b.*\b\d\.\d{2,}', a['row'])]
    assert not no_score, f'players without their file and score beside them: {no_score}'
    screenshot(driver, path, players, '04a_recommend_players.png', out)

"""The documentation site (`make docs`, tools/docs.py) opened in a real browser: headless Chromium (Debian's package,
installed by `make browser`) driven by selenium through the system chromedriver (nothing is downloaded).

Builds the site into a temporary folder, serves it on localhost and opens every page: no console error, every
internal link resolves (HTTP 200; a #fragment names an element of its page), every image renders, nothing is loaded
from another host, the sidebar lists every chapter in nbs/ order, index first. Screenshots of the index page and of the
MAE chapter go to runs/docs/ (index.png, index_results.png, 03_mae.png)."""
import functools, http.server, subprocess, sys, threading, urllib.error, urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urldefrag

from browser import chromium, require_browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / 'runs' / 'docs'
SCREENSHOTS = ('index.html', '03_mae.html')

# What a page shows once loaded: its links, images, loaded resources, element ids, sidebar entries, tables.
PAGE_FACTS = """
const all = sel => [...document.querySelectorAll(sel)];
return {
  links: all('a[href]').map(a => a.href),
  images: all('img').map(i => ({src: i.src.slice(0, 60), complete: i.complete, width: i.naturalWidth})),
  resources: all('[src]').map(e => e.src).concat(all('link[href]').map(l => l.href)),
  ids: all('[id], a[name]').map(e => e.id || e.name),
  nav: all('nav.sidebar ol.chapters > li > a').map(a => [a.href, a.textContent.trim()]),
  tables: all('article table').length,
  sidebar: getComputedStyle(document.querySelector('nav.sidebar')).position,
};"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@contextmanager
def serve(folder: Path):
    "Serve `folder` on a free localhost port; yields the base URL."
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try: yield f'http://127.0.0.1:{srv.server_port}/'
    finally:
        srv.shutdown()
        srv.server_close()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method='HEAD'), timeout=10) as r: return r.status
    except urllib.error.HTTPError as e: return e.code


def page_problems(url: str, facts: dict, console: list, base: str, expected_nav: list) -> list[str]:
    "What is wrong with one loaded page (links to other pages are checked after every page is seen)."
    name = url[len(base):]
    out = [f'{name}: console {e["level"]}: {e["message"]}' for e in console if e['level'] == 'SEVERE']
    out += [f'{name}: image not rendered: {i["src"]}' for i in facts['images'] if not (i['complete'] and i['width'] > 0)]
    out += [f'{name}: loads from outside the site: {r}' for r in facts['resources'] if not r.startswith((base, 'data:'))]
    if [href for href, _ in facts['nav']] != expected_nav:
        out.append(f'{name}: sidebar {[h[len(base):] for h, _ in facts["nav"]]} != {[h[len(base):] for h in expected_nav]}')
    out += [f'{name}: sidebar entry without a title: {href}' for href, label in facts['nav'] if not label or 'untitled' in label]
    if facts['sidebar'] != 'fixed': out.append(f'{name}: the stylesheet is not applied (sidebar position {facts["sidebar"]})')
    return out


def link_problems(links: dict, ids: dict, base: str) -> list[str]:
    "Every internal link: its target answers 200, and a #fragment on a page names an element of that page."
    out, status = [], {}
    for link, pages in sorted(links.items()):
        target, frag = urldefrag(link)
        if target not in status: status[target] = http_status(target)
        where = f'{link[len(base):]} (from {sorted(pages)[0]})'
        if status[target] != 200: out.append(f'broken link {where}: HTTP {status[target]}')
        elif frag and unquote(frag) not in ids.get(target, ()): out.append(f'missing anchor {where}')
    return out


def check_site(site: Path, profile: Path) -> tuple[list[str], dict]:
    "Open every page of a built site in Chromium: (problems, tables per page); screenshots into runs/docs/."
    chapters = sorted(p.stem for p in (ROOT / 'nbs').glob('*.ipynb') if p.stem != 'index' and not p.name.startswith('_'))
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html'))
    problems = [f'no page for {c}' for c in ['index', *chapters] if f'{c}.html' not in pages]
    links, ids, tables = {}, {}, {}
    SHOTS.mkdir(parents=True, exist_ok=True)
    with serve(site) as base, chromium(profile) as driver:
        expected_nav = [f'{base}{c}.html' for c in ['index', *chapters]]
        for page in pages:
            url = base + page
            driver.get(url)
            facts = driver.execute_script(PAGE_FACTS)
            problems += page_problems(url, facts, driver.get_log('browser'), base, expected_nav)
            ids[url], tables[page] = set(facts['ids']), facts['tables']
            for link in facts['links']:
                if link.startswith(base): links.setdefault(link, set()).add(page)
            if page in SCREENSHOTS: screenshots(driver, page)
        problems += link_problems(links, ids, base)
    return problems, tables


def screenshots(driver, page: str):
    "The page's top, and for the index also its first tables (the Results section), as runs/docs/<name>.png."
    name = page.removesuffix('.html')
    driver.save_screenshot(str(SHOTS / f'{name}.png'))
    if page == 'index.html':
        driver.execute_script("document.getElementById('results')?.scrollIntoView()")
        driver.save_screenshot(str(SHOTS / 'index_results.png'))


def test_docs_site_in_chromium(tmp_path, request):
    require_browser(request)
    site = tmp_path / 'site'
    build = subprocess.run([sys.executable, str(ROOT / 'tools' / 'docs.py'), '--out', str(site)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0 and 'unresolved' not in build.stderr, build.stdout + build.stderr
    problems, tables = check_site(site, tmp_path / 'profile')
    assert not problems, f'{len(problems)} problem(s) in the docs site:\n' + '\n'.join(problems[:40])
    assert tables['index.html'] >= 5, "the index page should show the README's tables"

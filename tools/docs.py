"""Build the documentation site into _docs/ from the chapters in nbs/ (`nbdev_docs` needs Quarto, not installable here).

    python tools/docs.py [--out DIR]        # what `make docs` runs; open DIR/index.html

One page per notebook, rendered from its committed outputs (nothing is executed) by nbconvert's HTMLExporter with our
cell template (tools/docs_template/cells/) inside our page (tools/docs_template/page.html.j2): a sidebar lists the
chapters in nbs/ order, index first, each titled by its first markdown heading. nbdev directives act as in nbdev's
docs: `#| hide` cells are left out, `show_doc` inputs and `#| echo: false` inputs hidden, `#| output: false` outputs
dropped, exported source folded. The index page is nbs/index.ipynb with each `#| readme_table*` cell replaced by the
table README.md shows, and each `#| readme_md` cell by the Markdown its code makes (tools/readme.py). Links to
notebooks point to their pages; repository files that markdown links to, or that a `code` span names under results/
or benchmarks/, are copied into the site at the same relative path (markdown files rendered as pages). Math becomes MathML at build time: the site loads nothing from the network.
"""
import argparse, configparser, html, posixpath, re, shutil, sys, time
from collections import Counter
from pathlib import Path

import jinja2, nbformat
from latex2mathml.converter import convert as latex_to_mathml
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from pygments.formatters import HtmlFormatter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readme  # noqa: E402  (the README's tables, shown the same way on the index page)

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
TEMPLATES = Path(__file__).resolve().parent / 'docs_template'
LINKED = ('results/', 'benchmarks/')      # a `code` span naming a file under these folders becomes a link to it
MARK = '.docs-build'                      # marks a folder this script may delete and rebuild
REMOTE = re.compile(r'^(https?:)?//', re.I)
RESOURCES = dict(img='src', script='src', link='href', iframe='src', source='src', video='src', audio='src', embed='src')


# ---- markdown: slugged headings, links into the site, MathML, Quarto's link attributes ----

def slugify(text: str, seen: Counter) -> str:
    "GitHub-style heading id (lowercase, punctuation dropped, spaces to '-'), made unique on the page by a suffix."
    plain = html.unescape(re.sub(r'<[^>]+>', '', text))
    slug = re.sub(r'\s+', '-', re.sub(r'[^\w\- ]', '', plain.strip().lower())) or 'section'
    seen[slug] += 1
    return slug if seen[slug] == 1 else f'{slug}-{seen[slug] - 1}'


def mathml(tex: str, display: str) -> str:
    "LaTeX as MathML (Chromium renders it natively); TeX as code where the converter cannot."
    try: return latex_to_mathml(tex, display=display)
    except Exception: return f'<code class="math">{html.escape(tex)}</code>'


class DocsRenderer(IPythonRenderer):
    "nbconvert's markdown renderer with slugged heading ids, links pointed into the site and math as MathML."
    def __init__(self, site: 'Site'):
        super().__init__(escape=False)
        self.site = site

    def heading(self, text, level, **attrs):
        hid = self.site.heading(text, level)
        return f'<h{level} id="{hid}">{text}<a class="anchor-link" href="#{hid}">¶</a></h{level}>\n'

    def link(self, text, url, title=None): return super().link(text, self.site.url(url), title)
    def image(self, text, url, title=None): return super().image(text, self.site.url(url), title)

    def codespan(self, text):
        href = self.site.code_link(text)
        return f'<a href="{href}">{super().codespan(text)}</a>' if href else super().codespan(text)

    def inline_math(self, body): return mathml(body, 'inline')
    def block_math(self, body): return mathml(body, 'block')
    def latex_environment(self, name, body): return mathml(f'\\begin{{{name}}}{body}\\end{{{name}}}', 'block')


def unquarto(md: str) -> str:
    "show_doc's `[source](url){attrs}` as a plain HTML link; other Quarto attribute blocks after a link dropped."
    md = re.sub(r'\[source\]\(([^)\s]+)\)\{[^}\n]*\}', r'<a class="source-link" href="\1">source</a>', md)
    return re.sub(r'(\]\([^)\s]+\))\{[^}\n]*\}', r'\1', md)


class DocsExporter(HTMLExporter):
    "HTMLExporter whose markdown (cells and outputs) is rendered for the page `site` is writing."
    site: 'Site' = None

    @jinja2.pass_context
    def markdown2html(self, context, source): return self.site.markdown(source)


# ---- notebooks: nbdev directives, titles ----

DIRECTIVE = re.compile(r'^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')


def split_directives(src: str) -> tuple[list[str], str]:
    "A cell's `#|` directive lines and the rest of its source."
    lines = src.split('\n')
    return [l for l in lines if l.startswith('#|')], '\n'.join(l for l in lines if not l.startswith('#|')).strip()


def parse(lines: list[str]) -> dict:
    "{'export': '', 'default_exp': 'core', 'echo': 'false', ...} from directive lines."
    return {m[1]: m[2] for m in map(DIRECTIVE.match, lines) if m}


def is_showdoc(body: str) -> bool:
    return bool(body) and all(re.match(r'^show_doc\(.*\)$', l.strip()) for l in body.split('\n') if l.strip())


def module_of(nb) -> str:
    "The module a notebook exports to (`#| default_exp`), or '' for the index."
    for c in nb.cells:
        exp = parse(split_directives(c.source)[0]).get('default_exp') if c.cell_type == 'code' else None
        if exp: return f'cmmixer.{exp}'
    return ''


def prepare_code(cell, lines: list[str], body: str, module: str, setup: str = ''):
    "A code cell as the docs show it (None: left out): README tables and readings, hidden input/output, folded exports."
    if readme.is_markdown_cell(lines): return nbformat.v4.new_markdown_cell(readme.run_markdown(body, setup))
    table = readme.directive_table(lines)
    if table is not None: return nbformat.v4.new_markdown_cell(table)
    d = parse(lines)
    if d.get('output') == 'false': cell.outputs = []
    if not body and not cell.outputs: return None
    cell.source = body
    if not body or is_showdoc(body) or d.get('echo') == 'false': cell.metadata['transient'] = {'remove_source': True}
    exported = bool({'export', 'exporti'} & d.keys())
    label = (f'source · {module}' if module else 'source') if exported else 'code'
    cell.metadata['docs'] = dict(label=label, open=not exported)
    return cell


def prepare(nb):
    "The notebook with nbdev's directives applied (its cells are changed in place)."
    module, cells, setup = module_of(nb), [], readme.setup_code(nb)
    for cell in nb.cells:
        lines, body = split_directives(cell.source)
        if 'hide' in parse(lines) or (cell.cell_type == 'markdown' and not body): continue
        cell = prepare_code(cell, lines, body, module, setup) if cell.cell_type == 'code' else cell
        if cell is not None: cells.append(cell)
    nb.cells = cells
    return nb


def title_of(nb) -> str:
    "The text of the first markdown heading, without markdown code marks."
    for c in nb.cells:
        m = re.search(r'^#+\s+(.+)$', c.source, re.M) if c.cell_type == 'markdown' else None
        if m: return m[1].replace('`', '').strip()
    return 'untitled'


def chapters() -> list[Path]:
    "index.ipynb first, then the chapters in nbs/ file order."
    nbs = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    return sorted(nbs, key=lambda p: p.stem != 'index')


# ---- the site: pages, copied files, links ----

class Site:
    """The output folder. Renders markdown for the page being written (heading ids, its table of contents, links made
    relative to it), writes pages into the page template, copies in the repository files they link to."""
    def __init__(self, out: Path, nav: list[dict], settings: dict):
        self.out, self.nav, self.settings, self.files, self.unresolved = out, nav, settings, set(), []
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False)
        self.template = env.get_template('page.html.j2')

    def begin(self, page: str, source: Path):
        "Start a page: its site path, the repository file it comes from, no heading ids yet."
        self.page, self.source, self.seen, self.toc = page, source, Counter(), []

    def markdown(self, md: str) -> str:
        return MarkdownWithMath(renderer=DocsRenderer(self)).render(unquarto(md))

    def heading(self, text: str, level: int) -> str:
        "A heading's id on this page; level-2 headings also go into the sidebar's table of contents."
        hid = slugify(text, self.seen)
        if level == 2: self.toc.append((hid, html.unescape(re.sub(r'<[^>]+>', '', text)).strip()))
        return hid

    def href(self, rel: str) -> str:
        "A site path (from the site root) as a link from the current page."
        return posixpath.relpath(rel, posixpath.dirname(self.page) or '.')

    def target(self, path: Path) -> str | None:
        "The site path of a repository file: a notebook's page, or the file copied in (markdown rendered as a page)."
        path = path.resolve()
        if not path.is_file() or ROOT not in path.parents: return None
        if path.suffix == '.ipynb' and path.parent == NBS: return f'{path.stem}.html'
        rel = path.relative_to(ROOT).as_posix()
        if rel.split('/')[0] in ('.git', '.venv', '_docs', 'runs', 'data'): return None
        if path.suffix == '.md': rel = rel[:-3] + '.html'
        if rel not in self.files:
            self.files.add(rel)
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == '.md': self.markdown_page(rel, path)
            else: shutil.copy2(path, self.out / rel)
        return rel

    def url(self, url: str) -> str:
        "A link or image written relative to the notebook (or, as in README.md, to the repository root), for the site."
        if url.startswith('#') or re.match(r'^[a-z][\w+.-]*:', url, re.I) or REMOTE.match(url): return url
        path, _, frag = url.partition('#')
        rel = self.target(self.source.parent / path) or self.target(ROOT / path)
        if rel is None:
            self.unresolved.append(f'{self.page}: {url}')
            return url
        return self.href(rel) + (f'#{frag}' if frag else '')

    def code_link(self, text: str) -> str | None:
        "The link for a code span naming a notebook (`03_mae.ipynb`, `03_mae`) or a file under results/ or benchmarks/."
        if m := re.fullmatch(r'(?:nbs/)?([\w.-]+\.ipynb|\d\d[a-z]?_\w+)', text):
            rel = self.target(NBS / (m[1] if m[1].endswith('.ipynb') else f'{m[1]}.ipynb'))
        elif text.startswith(LINKED): rel = self.target(ROOT / text)
        else: return None
        return self.href(rel) if rel else None

    def write(self, content: str):
        "Write the current page: rendered `content` inside the page template, with the sidebar."
        nav = [dict(item, current=item['href'] == self.page) for item in self.nav]
        title = next((i['title'] for i in nav if i['current']), self.source.name)
        page = self.template.render(content=content, toc=self.toc, root='../' * self.page.count('/'), nav=nav,
                                    title=title, source=self.source.relative_to(ROOT).as_posix(), **self.settings)
        check_local(page, self.page)
        (self.out / self.page).write_text(page)

    def markdown_page(self, rel: str, path: Path):
        "A markdown file of the repository as a page of the site (the current page's state kept around it)."
        saved = self.page, self.source, self.seen, self.toc
        self.begin(rel, path)
        self.write(self.markdown(path.read_text()))
        self.page, self.source, self.seen, self.toc = saved


RESOURCE_TAG = re.compile(r'<(%s)\b[^>]*?\s(src|href)\s*=\s*["\']?((https?:)?//[^"\'\s>]*)' % '|'.join(RESOURCES), re.I)


def check_local(page: str, name: str):
    "Refuse a page that would load anything from the network (scripts, styles, images, frames, media)."
    remote = [m[3] for m in RESOURCE_TAG.finditer(page) if RESOURCES[m[1].lower()] == m[2].lower()]
    if remote: raise SystemExit(f'docs: {name} would load from the network: {remote[:3]}')


def settings() -> dict:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'settings.ini')
    d = cfg['DEFAULT']
    return dict(project=d['title'], version=d['version'], description=d['description'])


def fresh(out: Path):
    "An empty output folder; an existing one is replaced only if this script built it."
    if out.exists():
        if any(out.iterdir()) and not (out / MARK).exists():
            raise SystemExit(f'docs: {out} was not built by tools/docs.py: remove it first')
        shutil.rmtree(out)
    (out / 'assets').mkdir(parents=True)
    (out / MARK).write_text('built by tools/docs.py; rebuilt by make docs\n')


def build(out: Path) -> Site:
    "Build the whole site into `out`; returns the Site (its `files` and `unresolved` links)."
    fresh(out)
    nbs = [(p, nbformat.read(p, as_version=4)) for p in chapters()]
    nav = [dict(href=f'{p.stem}.html', stem=p.stem, title=title_of(nb)) for p, nb in nbs]
    site = Site(out, nav, settings())
    exporter = DocsExporter(template_name='cells', extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.site = site
    for (path, nb), item in zip(nbs, nav):
        site.begin(item['href'], path)
        body, _ = exporter.from_notebook_node(prepare(nb))
        site.write(body)
    css = (TEMPLATES / 'style.css').read_text() + '\n' + HtmlFormatter(style='default').get_style_defs('.highlight')
    (out / 'assets' / 'style.css').write_text(css)
    return site


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, default=ROOT / '_docs', help='output folder (default: _docs/)')
    out = ap.parse_args().out.resolve()
    t0 = time.time()
    site = build(out)
    for u in site.unresolved: print(f'docs: unresolved link {u}', file=sys.stderr)
    print(f'docs: {len(site.nav)} pages and {len(site.files)} linked files in {out} ({time.time() - t0:.1f} s); '
          f'open {out / "index.html"} or run: python -m http.server -d {out}')


if __name__ == '__main__': main()

"""Write README.md from nbs/index.ipynb: markdown cells as they are, code cells as python blocks.
Used instead of nbdev_readme, which needs Quarto (not installable on these machines).

A code cell holding the directive `#| readme_table PATH` (PATH relative to the repository) is replaced by the
CSV at PATH as a markdown table, so the README shows exactly the numbers the notebook runs wrote to results/.
A code cell holding `#| readme_md` is replaced by the Markdown its code makes: the code runs in the project root, in a
fresh namespace after the index's `#| hide` code cells (its imports), with this checkout's `cmmixer` first on the path;
its last expression is the Markdown (a str, or an object with a str `.data`, as IPython's `Markdown`, which shows the
same text in JupyterLab). The readings' numbers are computed that way from results/ and benchmarks/, never typed.
Cells marked `#| hide` are left out."""
import ast, csv, json, os, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# The eight retrieval metrics as the README's tables head them: (CSV prefix, column heading).
METRICS = [(f'{d}_{k}', f"{arrow} {k}" + (' ↓' if k == 'MedR' else '')) for d, arrow in (('v2m', 'V→M'), ('m2v', 'M→V'))
           for k in ('MedR', 'R@1', 'R@5', 'R@10')]


def _fmt(v: str) -> str:
    try: f = float(v)
    except ValueError: return v
    if f == int(f): return str(int(f))
    if abs(f) < 0.01: return f'{f:.2g}'                  # a learning rate or a tiny spread: not rounded to 0
    return f'{f:.2f}'.rstrip('0').rstrip('.')


def csv_table(path: Path) -> str:
    "A markdown table of a CSV (numbers to at most 2 decimals)."
    rows = list(csv.reader(path.open()))
    head, body = rows[0], rows[1:]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(_fmt(v) for v in r) + ' |' for r in body]
    return '\n'.join(lines)


def table1_markdown(path: Path) -> str:
    "Table 1 as the paper lays it out: ours as mean ± std over seeds, the paper's value in brackets, chance last."
    rows, metrics = list(csv.DictReader(path.open())), METRICS
    head = ['architecture', 'mixer', 'seeds'] + [h for _, h in metrics]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['decoder'].title(), r['mixer'].replace('_', ' '), r['seeds']]
        cells += [f"{float(r[m + '_mean']):.1f} ± {float(r[m + '_std']):.1f} [{_fmt(r[m + '_paper'])}]" for m, _ in metrics]
        lines.append('| ' + ' | '.join(cells) + ' |')
    r = rows[0]
    lines.append('| chance | | | ' + ' | '.join(f"{float(r[m + '_chance']):.1f}" for m, _ in metrics) + ' |')
    return '\n'.join(lines) + f"\n\npools: N = {r['N_v2m']} tracks (V→M), {r['N_m2v']} videos (M→V); [brackets]: the paper's Table 1 (M2M, N = 2000)"


def references_markdown(path: Path) -> str:
    "Reference points on Table 1's pools (chance, no pre-training, feature baseline, oracle), mean ± std where seeded."
    rows, metrics = list(csv.DictReader(path.open())), METRICS
    head = ['reference', 'seeds'] + [h for _, h in metrics]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        seeded = int(r['seeds']) > 1
        cells = [r['method'], r['seeds']] + [f"{float(r[m + '_mean']):.1f}" + (f" ± {float(r[m + '_std']):.1f}" if seeded else '')
                                             for m, _ in metrics]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


INPUT_WORDS = {'mae': 'MAE features', 'fullres': 'full-res. hand-crafted', 'pixels': 'pixels'}   # Table 2's inputs column


def table2_markdown(path: Path) -> str:
    """Table 2 as the closing notes lay it out: one line per row (methods, then references), mean ± std over seeds,
    the chosen lr factor, and the paper's R@1 for the column (it gives no other metric nor direction)."""
    rows = list(csv.DictReader(path.open()))
    metrics = [(m, h, 1 if m.endswith('MedR') else 2) for m, h in METRICS]   # decimals: ranks 1, recalls 2
    head = ['row', 'inputs', 'lr ×', 'seeds'] + [h for _, h, _ in metrics] + ["paper's R@1"]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        seeded = int(r['seeds']) > 1
        cells = [r['method'], INPUT_WORDS.get(r.get('inputs') or '', ''), _fmt(r['lr_scale']), r['seeds'] if int(r['seeds']) else '']
        cells += [f"{float(r[m + '_mean']):.{d}f}" + (f" ± {float(r[m + '_std']):.{d}f}" if seeded else '') for m, _, d in metrics]
        cells.append(_fmt(r['v2m_R@1_paper']) if r['v2m_R@1_paper'] else ('not in the paper' if r['kind'] == 'method' else ''))
        lines.append('| ' + ' | '.join(cells) + ' |')
    r = rows[0]
    return '\n'.join(lines) + (f"\n\npools: N = {r['N_v2m']} tracks (V→M), {r['N_m2v']} videos (M→V); R@k in %; inputs: what the row "
                               "reads (frozen MAE features, full-resolution hand-crafted features, or the pixels its encoder is "
                               "fine-tuned on), chosen on val for the baselines; lr ×: the row's recipe lr times the factor the "
                               "budget chose on val; the paper's R@1 is its Table 2 for this column")


def table6_markdown(path: Path) -> str:
    "Table 6 (pre-training data scale): the paper's rows, then ours with the val median ranks that measure them."
    rows = list(csv.DictReader(path.open()))
    head = ['model', 'pre-training data', 'data ×', 'source', 'pre-training', 'fine-tuning pairs',
            'V→M MedR ↓ pre-trained / random / chance', 'M→V MedR ↓ pre-trained / random / chance', 'pre-trained ÷ random (V→M, M→V)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['model'], r['pt_data'], _fmt(r['scale']), r['source']]
        if r['source'] == 'paper': cells += [''] * 5
        else:
            cells += [f"{_fmt(r['pt_videos'])} videos × {_fmt(r['pt_epochs'])} epochs ({_fmt(r['pt_steps'])} steps; {r['config']})",
                      _fmt(r['finetune_pairs'])]
            cells += [' / '.join(_fmt(r[f'{k}_{d}']) for k in ('cmmixer', 'random', 'chance')) for d in ('v2m', 'm2v')]
            cells.append(f"{_fmt(r['ratio_v2m'])}, {_fmt(r['ratio_m2v'])}")
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + ("\n\ndata ×: the paper's, its pre-training data over M2M's; ours, the training videos over the smallest "
                               "setting's (839). Ours are the CPU-scale study's val split (`results/cpu_scale_study.csv`); "
                               "pre-trained ÷ random under 1: pre-training beat a random start")


TABLES = {'readme_table': csv_table, 'readme_table1': table1_markdown, 'readme_refs': references_markdown,
          'readme_table2': table2_markdown, 'readme_table6': table6_markdown}


def directive_table(directives) -> str | None:
    "The markdown table a code cell's `#| readme_table* PATH` directive stands for, with a line naming PATH; else None."
    for d in directives:
        kind = d.split()[1:2]
        if kind and kind[0] in TABLES:
            rel = d.split(None, 2)[2].strip()
            path = ROOT / rel
            if not path.exists(): raise SystemExit(f"readme: {path} does not exist (run the notebook that writes it)")
            return TABLES[kind[0]](path) + f'\n\n<sub>from `{rel}`{stamp(rel)}</sub>'
    return None


def stamp(rel: str) -> str:
    "What results/MANIFEST.csv says made the file `rel` (relative to the repository), as `tables.reading.made_by` says it."
    if str(ROOT) not in sys.path[:1]:
        sys.path.insert(0, str(ROOT))
    from cmmixer.tables.reading import made_by
    try:
        made = made_by(str(Path(rel).relative_to('results')), ROOT / 'results')
    except ValueError:
        return ' · no row in results/MANIFEST.csv'
    return (' · made at ' if made.startswith('commit') else ' · ') + made



def is_hidden(directives) -> bool:
    return any(d.replace(' ', '') == '#|hide' for d in directives)


def is_markdown_cell(directives) -> bool:
    "Whether a code cell's directives mark it `#| readme_md`."
    return any(d.split()[1:2] == ['readme_md'] for d in directives)


def setup_code(nb) -> str:
    "The code of a notebook's `#| hide` code cells (the index's imports), which every `#| readme_md` cell runs after."
    srcs = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']
    return '\n\n'.join(s for s in srcs if is_hidden([l for l in s.split('\n') if l.startswith('#|')]))


def run_markdown(code: str, setup: str = '') -> str:
    """The Markdown a `#| readme_md` cell stands for: `setup`, then `code`, run in a fresh namespace in the project
    root with this checkout's `cmmixer` first on the path; the value of its last expression (a str, or `.data`)."""
    tree = ast.parse(code)
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        raise SystemExit('readme: a `#| readme_md` cell must end with an expression (the Markdown)')
    last = ast.Expression(tree.body.pop().value)
    ns, cwd = {'__name__': '__readme__'}, os.getcwd()
    if str(ROOT) not in sys.path[:1]: sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    try:
        exec(compile(setup, '<index: hidden cells>', 'exec'), ns)
        exec(compile(tree, '<readme_md cell>', 'exec'), ns)
        out = eval(compile(last, '<readme_md cell>', 'eval'), ns)
    finally:
        os.chdir(cwd)
    out = getattr(out, 'data', out)
    if not isinstance(out, str):
        raise SystemExit(f'readme: a `#| readme_md` cell gave {type(out).__name__}, not Markdown')
    return out.strip()


def main(nb_path, out_path):
    nb = json.loads(Path(nb_path).read_text())
    parts, setup = [], setup_code(nb)
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        lines = src.split('\n')
        directives = [l for l in lines if l.startswith('#|')]
        if not src or is_hidden(directives): continue
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if c['cell_type'] == 'code' and is_markdown_cell(directives):
            parts.append(run_markdown(body, setup))
            continue
        table = directive_table(directives) if c['cell_type'] == 'code' else None
        if table is not None:
            parts.append(table)
            continue
        parts.append(body if c['cell_type'] == 'markdown' else f'```python\n{body}\n```')
    header = '<!-- generated from nbs/index.ipynb by tools/readme.py (make readme); edit the notebook -->\n\n'
    Path(out_path).write_text(header + '\n\n'.join(parts) + '\n')


if __name__ == '__main__': main(*sys.argv[1:3])

"""Write README.md from nbs/index.ipynb: markdown cells as they are, code cells as python blocks.
Used instead of nbdev_readme, which needs Quarto (not installable on these machines).

A code cell holding the directive `#| readme_table PATH` (PATH relative to the repository) is replaced by the
CSV at PATH as a markdown table, so the README shows exactly the numbers the notebook runs wrote to results/.
Cells marked `#| hide` are left out."""
import csv, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fmt(v: str) -> str:
    try: f = float(v)
    except ValueError: return v
    return f'{f:.2f}'.rstrip('0').rstrip('.') if f != int(f) else str(int(f))


def csv_table(path: Path) -> str:
    "A markdown table of a CSV (numbers to at most 2 decimals)."
    rows = list(csv.reader(path.open()))
    head, body = rows[0], rows[1:]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(_fmt(v) for v in r) + ' |' for r in body]
    return '\n'.join(lines)


def main(nb_path, out_path):
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        lines = src.split('\n')
        directives = [l for l in lines if l.startswith('#|')]
        if not src or any(d.replace(' ', '') == '#|hide' for d in directives): continue
        table = [d.split(None, 2)[2] for d in directives if d.split()[1:2] == ['readme_table']]
        if c['cell_type'] == 'code' and table:
            path = ROOT / table[0].strip()
            if not path.exists(): raise SystemExit(f"readme: {path} does not exist (run the notebook that writes it)")
            parts.append(csv_table(path) + f'\n\n<sub>from `{table[0].strip()}`</sub>')
            continue
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        parts.append(body if c['cell_type'] == 'markdown' else f'```python\n{body}\n```')
    header = '<!-- generated from nbs/index.ipynb by tools/readme.py (make readme); edit the notebook -->\n\n'
    Path(out_path).write_text(header + '\n\n'.join(parts) + '\n')


if __name__ == '__main__': main(*sys.argv[1:3])

"""Write README.md from nbs/index.ipynb: markdown cells as they are, code cells as python blocks.
Used instead of nbdev_readme, which needs Quarto (not installable on these machines)."""
import json, sys
from pathlib import Path

def main(nb_path, out_path):
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#| hide') or src.startswith('#|hide'): continue
        lines = [l for l in src.split('\n') if not l.startswith('#|')]
        src = '\n'.join(lines).strip()
        parts.append(src if c['cell_type'] == 'markdown' else f'```python\n{src}\n```')
    header = '<!-- generated from nbs/index.ipynb by tools/readme.py (make readme); edit the notebook -->\n\n'
    Path(out_path).write_text(header + '\n\n'.join(parts) + '\n')

if __name__ == '__main__': main(*sys.argv[1:3])

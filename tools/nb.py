"""Round-trip a notebook to a plain-text 'percent' script and back, for editing notebooks as text.

    python tools/nb.py topy nbs/00_media.ipynb /tmp/00_media.py
    python tools/nb.py tonb /tmp/00_media.py nbs/00_media.ipynb

Cells start with `# %%` (code) or `# %% [markdown]` (markdown, every line prefixed by `# `).
A papermill parameters cell is `# %% tags=["parameters"]`. `tonb` keeps the outputs of every code cell whose
source is unchanged in the notebook it overwrites (committed outputs survive an edit elsewhere); a changed cell
loses its outputs until the chapter is run again.
"""
import hashlib, json, re, sys
from pathlib import Path

HEAD = re.compile(r'^# %%( \[markdown\])?( tags=(\[.*\]))?\s*$')

def to_py(nb_path, py_path):
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb['cells']:
        tags = c.get('metadata', {}).get('tags')
        head = '# %%' + (' [markdown]' if c['cell_type'] == 'markdown' else '')
        if tags: head += ' tags=' + json.dumps(tags)
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': src = '\n'.join(('# ' + l) if l else '#' for l in src.split('\n'))
        out.append(head + '\n' + src + '\n')
    Path(py_path).write_text('\n'.join(out))

def _old_outputs(nb_path) -> dict:
    "source -> (outputs, execution_count) of the code cells of the notebook about to be overwritten."
    p = Path(nb_path)
    if not p.is_file(): return {}
    old = json.loads(p.read_text())
    return {''.join(c['source']): (c.get('outputs', []), c.get('execution_count')) for c in old['cells']
            if c['cell_type'] == 'code' and c.get('outputs')}

def to_nb(py_path, nb_path):
    keep = _old_outputs(nb_path)
    cells, cur = [], None
    for line in Path(py_path).read_text().split('\n'):
        m = HEAD.match(line)
        if m:
            cur = dict(md=bool(m.group(1)), tags=json.loads(m.group(3)) if m.group(3) else None, lines=[])
            cells.append(cur); continue
        if cur is None: continue
        cur['lines'].append(line)
    nb_cells = []
    for c in cells:
        lines = c['lines']
        while lines and not lines[-1].strip(): lines.pop()
        if c['md']: lines = [l[2:] if l.startswith('# ') else l.lstrip('#') for l in lines]
        src = '\n'.join(lines)
        meta = {'tags': c['tags']} if c['tags'] else {}
        cid = hashlib.sha1(f'{len(nb_cells)}:{src}'.encode()).hexdigest()[:8]   # nbformat 4.5 wants cell ids
        cell = dict(cell_type='markdown' if c['md'] else 'code', id=cid, metadata=meta,
                    source=[l + '\n' for l in src.split('\n')[:-1]] + [src.split('\n')[-1]])
        if not c['md']:
            outs, _ = keep.get(''.join(cell['source']), ([], None))
            cell.update(execution_count=None, outputs=outs)
        nb_cells.append(cell)
    nb = dict(cells=nb_cells, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
              nbformat=4, nbformat_minor=5)
    Path(nb_path).write_text(json.dumps(nb, indent=1) + '\n')

if __name__ == '__main__':
    cmd, src, dst = sys.argv[1:4]
    {'topy': to_py, 'tonb': to_nb}[cmd](src, dst)

"""Catalogue search speed, recall and memory: exact (one matrix product) vs faiss's IVF as cmmixer.indexing builds it.

    python benchmarks/retrieval.py                    # 1e3, 1e4, 1e5, 1e6 rows, clustered and uniform; writes benchmarks/retrieval_results.md
    python benchmarks/retrieval.py --sizes 1000 10000 --hnsw-sizes 10000 --out /tmp/r.md

Rows are random unit vectors of the real index width: K * d = 8 clips x 128 (RetrieverConfig.proj_dim) = 1024
floats, the 'clip' score of a paper-scale retriever (a row is one track excerpt, flattened and scaled by
1/sqrt(K), so the score is a dot product). Two kinds of catalogue: *clustered* rows are drawn around sqrt(rows)
random centres (unit centre plus isotropic noise of the same total norm, cosine to the centre ~0.7), so that
neighbours exist, as between real tracks; *uniform* rows have no structure at all, the worst case for any
approximate index. The IVF is `IVFIndex.build` (nlist = sqrt(rows)) with `nprobe` chosen by `tune_nprobe`, the
smallest power of two whose recall@10 on 200 of the index's own rows reaches 0.95, exactly as `build_ann` does;
build time includes that tuning. HNSW (faiss IndexHNSWFlat, M 32, efConstruction 40) is timed at the smaller
sizes only, as the evidence for choosing IVF: its build cost grows too fast for 2 cores. Queries are 64 fresh
draws from the same distribution. Latency: one query at a time (median), and a batch of 64 (per query). Recall@10:
the share of the exact top 10 the approximate search returns. Where the tuned nprobe is every list (uniform
vectors: no index finds their neighbours without scanning everything), `Index.search(approx=True)` answers with the
exact search, which is then faster.

Memory is measured, not computed. The rows are written to a .npy and the IVF to a faiss file (as `build_index` and
`build_ann` write them); each search then runs in a fresh child process, which reports its peak resident memory
above its own baseline after its imports (VmHWM - VmRSS of /proc/self/status, the peak reset after the imports):
*memory* over loading and single queries, *with a batch of 64* over the batches too; *anonymous / file-backed*,
the growth of RssAnon and RssFile at the end; *memory / vectors*, the two peaks over the vectors' bytes. *exact*
reads the memory-mapped .npy, as `Index.search` does, either scoring the whole batch at once (before) or a group of
queries at a time (`exact_topk`, `query_groups`: at most 64 MiB of scores, what `Index.search` does now); *IVF in RAM (before)* is `faiss.read_index` without flags,
what `Index.ann()` did: an anonymous copy of every vector; *IVF memory-mapped (now)* is `IVFIndex.load`, what
`Index.ann()` does: the lists are the file's pages and only the probed lists become resident (uniform vectors
probe every list, hence all of them); latency and recall of the two IVF rows are side by side. The *IVF build*
row is a child running `IVFIndex.build` and `tune_nprobe` on the memory-mapped .npy and saving the IVF: faiss's
lists, anonymous and once (with the spare capacity of their growth), one 65,536-row block that faiss encodes
while adding, and the rows' pages. HNSW holds its own copy in RAM: its memory is the child's after the build,
with the rows' mapping released. File-backed pages are page cache: clean pages of a file, which the kernel
reclaims under memory pressure and reads again when they are touched, whereas anonymous memory stays (without
swap, it cannot leave RAM). A long-lived process that serves both exact and approximate queries therefore holds
the embeddings' pages plus the pages of the IVF lists it has probed, both file-backed (at most about twice the
vectors once it has touched everything, all of it reclaimable), and as anonymous memory only the centroids and
per-query buffers; before, the IVF was an anonymous copy on top of the embeddings' pages. An exact batch scored
at once adds, for its duration, its [64, rows] scores, their negation and the top-k's int64 indices (about a
quarter of the vectors); by query groups, that block is bounded whatever the batch and the catalogue.
"""
import argparse, gc, json, math, os, platform, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import faiss
from cmmixer.ann import IVFIndex, SCORE_BYTES, tune_nprobe, recall_at, exact_topk

WIDTH = 8 * 128
MiB = 2**20
SEARCHES = ('exact-whole', 'exact', 'ivf-ram', 'ivf-mmap')


def clustered(n, width, rng, centres, out=None, chunk=100_000):
    "n unit vectors: a random unit centre each + isotropic noise of the same norm, renormalised (float32), into `out`."
    x = np.empty((n, width), np.float32) if out is None else out
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        c = centres[rng.integers(0, len(centres), m)]
        v = c + rng.standard_normal((m, width), dtype=np.float32) / math.sqrt(width)
        x[i:i + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return x


def uniform(n, width, rng, out=None, chunk=100_000):
    "n unit vectors with no structure (float32), into `out`."
    x = np.empty((n, width), np.float32) if out is None else out
    for i in range(0, n, chunk):
        v = rng.standard_normal((min(chunk, n - i), width), dtype=np.float32)
        x[i:i + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return x


def exact_search(x, q, k=10, whole=False):
    "Top-k rows by dot product (`exact_topk`, as `Index.search` scores), or with the whole batch's scores at once (before)."
    return exact_topk(x, q, k, budget=2**62 if whole else SCORE_BYTES)[0]


def timed(f, repeat):
    "(median seconds of `repeat` calls of `f`, the last call's result)."
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), r


def write_data(n, kind, rng, d):
    "Write the catalogue to d/x.npy (streamed, never all in RAM) and 64 queries to d/q.npy; return the queries."
    x = np.lib.format.open_memmap(d / 'x.npy', mode='w+', dtype=np.float32, shape=(n, WIDTH))
    if kind == 'uniform':
        uniform(n, WIDTH, rng, x)
        q = uniform(64, WIDTH, rng)
    else:
        centres = rng.standard_normal((max(10, int(math.sqrt(n))), WIDTH), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        clustered(n, WIDTH, rng, centres, x)
        q = clustered(64, WIDTH, rng, centres)
    x.flush()
    del x
    np.save(d / 'q.npy', q)
    return q


# ---- measured in a fresh child process ----

def proc_status():
    "VmRSS, VmHWM, RssAnon, RssFile of this process in bytes (/proc/self/status), or the peak alone without /proc."
    try:
        lines = Path('/proc/self/status').read_text().splitlines()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return dict(VmRSS=peak, VmHWM=peak, RssAnon=0, RssFile=0)
    keys = ('VmRSS', 'VmHWM', 'RssAnon', 'RssFile')
    return {l.split(':')[0]: int(l.split()[1]) * 1024 for l in lines if l.split(':')[0] in keys}


class Meter:
    "Resident memory of this process above its state at creation (its peak reset there where Linux allows)."
    def __init__(self):
        gc.collect()
        try:
            Path('/proc/self/clear_refs').write_text('5')          # VmHWM := VmRSS
        except OSError:
            pass
        self.base = proc_status()

    def peak(self):
        return max(0, proc_status()['VmHWM'] - self.base['VmRSS'])

    def held(self):
        "(anonymous, file-backed) growth in bytes."
        s = proc_status()
        return s['RssAnon'] - self.base['RssAnon'], s['RssFile'] - self.base['RssFile']


def child(a):
    "One measurement in this (fresh) process; prints its result as JSON on the last line."
    import torch
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    d = Path(a.dir)
    q = np.load(d / 'q.npy')
    truth = np.load(d / 'truth.npy') if (d / 'truth.npy').exists() else None
    reps, breps = a.reps, max(1, a.reps // 4)
    m = Meter()
    r = dict(load_s=0.0)
    if a.child == 'build':
        x = np.load(d / 'x.npy', mmap_mode='r')
        t = time.perf_counter()
        ivf = IVFIndex.build(x, seed=0)
        ivf.nprobe, tuned = tune_nprobe(ivf, x)
        r['build_s'] = time.perf_counter() - t
        faiss.write_index(ivf.index, str(d / 'ivf.faiss'))
        r.update(nlist=ivf.nlist, nprobe=ivf.nprobe, mem_1=m.peak(), mem_b=None)
    elif a.child in ('exact', 'exact-whole'):
        x = np.load(d / 'x.npy', mmap_mode='r')
        whole = a.child == 'exact-whole'
        r['ms_1'] = 1e3 * timed(lambda: exact_search(x, q[:1], whole=whole), reps)[0]
        r['mem_1'] = m.peak()
        t, rows = timed(lambda: exact_search(x, q, whole=whole), breps)
        r.update(ms_batch=1e3 * t / len(q), mem_b=m.peak(), recall10=recall_at(rows, truth))
    elif a.child in ('ivf-ram', 'ivf-mmap'):
        t = time.perf_counter()
        ivf = IVFIndex.load(d / 'ivf.faiss', a.nprobe, mmap=a.child == 'ivf-mmap')
        r['load_s'] = time.perf_counter() - t
        r['ms_1'] = 1e3 * timed(lambda: ivf.search(q[:1], 10), reps)[0]
        r['mem_1'] = m.peak()
        t, (rows, _) = timed(lambda: ivf.search(q, 10), breps)
        r.update(ms_batch=1e3 * t / len(q), mem_b=m.peak(), recall10=recall_at(rows, truth))
    elif a.child == 'hnsw':
        x = np.load(d / 'x.npy', mmap_mode='r')
        t = time.perf_counter()
        h = faiss.IndexHNSWFlat(WIDTH, 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 40
        h.add(x)
        r['build_s'] = time.perf_counter() - t
        del x                                                     # the rows' mapping released: what the search holds
        gc.collect()
        r['ef'] = []
        for ef in (64, 256):
            h.hnsw.efSearch = ef
            ms_1 = 1e3 * timed(lambda: h.search(q[:1], 10), reps)[0]
            t, (_, rows) = timed(lambda: h.search(q, 10), 1)
            r['ef'].append(dict(ef=ef, ms_1=ms_1, ms_batch=1e3 * t / len(q), recall10=recall_at(rows, truth)))
        r.update(mem_1=proc_status()['VmRSS'] - m.base['VmRSS'], mem_b=None)
    r['anon'], r['file'] = m.held()
    print(json.dumps(r))


def run_child(what, d, reps, nprobe=0):
    cmd = [sys.executable, str(Path(__file__).resolve()), '--child', what, '--dir', str(d), '--reps', str(reps),
           '--nprobe', str(nprobe)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise RuntimeError(f"the {what} child failed (exit {p.returncode})")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---- the parent: data, children, table ----

def bench(n, rng, tmp, kind='clustered', hnsw=False):
    d = Path(tempfile.mkdtemp(prefix=f'{kind}_{n}_', dir=tmp))
    t = time.perf_counter()
    q = write_data(n, kind, rng, d)
    x = np.load(d / 'x.npy', mmap_mode='r')
    np.save(d / 'truth.npy', exact_search(x, q))
    del x
    gen_s = time.perf_counter() - t
    vec = n * WIDTH * 4
    reps = 20 if n <= 100_000 else 5
    base = dict(rows=n, data=kind, vectors=vec, build_s=None, load_s=None, nprobe='-')
    b = run_child('build', d, reps)
    ivf_name = f"faiss IVF (nlist {b['nlist']})"
    out = [{**base, **b, 'search': f'{ivf_name} build', 'ms_1': None, 'ms_batch': None, 'recall10': None,
            'load_s': None}]
    names = {'exact-whole': 'exact, a batch scored at once (before)', 'exact': 'exact, by query groups (now)', 'ivf-ram': f'{ivf_name} in RAM (before)', 'ivf-mmap': f'{ivf_name} memory-mapped (now)'}
    for what in SEARCHES:
        r = run_child(what, d, reps, b['nprobe'])
        ivf = what.startswith('ivf')
        out.append({**base, **r, 'search': names[what], 'nprobe': b['nprobe'] if ivf else '-',
                    'build_s': b['build_s'] if ivf else None, 'load_s': r['load_s'] if ivf else None})
    if hnsw:
        h = run_child('hnsw', d, reps)
        for e in h['ef']:
            out.append({**base, **e, 'search': f"faiss HNSW (M 32, efSearch {e['ef']})", 'build_s': h['build_s'],
                        'mem_1': h['mem_1'], 'mem_b': None, 'anon': h['anon'], 'file': h['file']})
    shutil.rmtree(d, ignore_errors=True)
    peak = max(r['mem_b'] or r['mem_1'] for r in out)
    print(f"  {n:>9,d} rows ({kind}): data {gen_s:.1f} s, largest child peak {peak / MiB:.0f} MiB", flush=True)
    return out


def fmt(v, spec, none='-'):
    return none if v is None else format(v, spec)


def table_md(rows):
    head = ("| rows | data | search | nprobe | build (s) | load (s) | 1 query (ms) | per query in a batch of 64 (ms) | "
            "recall@10 vs exact | memory (MiB) | memory with a batch of 64 (MiB) | anonymous / file-backed (MiB) | "
            "memory / vectors |")
    out = [head, '|' + '---|' * 13]
    for r in rows:
        ratio = fmt(r['mem_1'] / r['vectors'], '.2f')
        if r['mem_b'] is not None:
            ratio += f" / {r['mem_b'] / r['vectors']:.2f}"
        mem_b = None if r['mem_b'] is None else r['mem_b'] / MiB
        out.append(f"| {r['rows']:,d} | {r['data']} | {r['search']} | {r['nprobe']} | {fmt(r['build_s'], '.1f')} | "
                   f"{fmt(r['load_s'], '.2f')} | {fmt(r['ms_1'], '.2f')} | {fmt(r['ms_batch'], '.3f')} | "
                   f"{fmt(r['recall10'], '.3f')} | {r['mem_1'] / MiB:.1f} | {fmt(mem_b, '.1f')} | "
                   f"{r['anon'] / MiB:.1f} / {r['file'] / MiB:.1f} | {ratio} |")
    return '\n'.join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[1_000, 10_000, 100_000, 1_000_000])
    p.add_argument('--hnsw-sizes', type=int, nargs='*', default=[10_000, 30_000])
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'retrieval_results.md'))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--tmp', default=None, help='folder of the temporary .npy and faiss files (default: the system one)')
    p.add_argument('--child', choices=SEARCHES + ('build', 'hnsw'), help=argparse.SUPPRESS)
    p.add_argument('--dir', help=argparse.SUPPRESS)
    p.add_argument('--reps', type=int, default=20, help=argparse.SUPPRESS)
    p.add_argument('--nprobe', type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a)
    import torch
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    rng = np.random.default_rng(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix='cmmixer_retrieval_bench_', dir=a.tmp))
    t0 = time.perf_counter()
    rows = []
    try:
        for kind in ('clustered', 'uniform'):
            for n in sorted(set(a.sizes) | set(a.hnsw_sizes)):
                rows += bench(n, rng, tmp, kind, hnsw=n in a.hnsw_sizes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    peak = max(r['mem_b'] or r['mem_1'] for r in rows)
    info = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, numpy {np.__version__}, "
            f"faiss {faiss.__version__}; width {WIDTH}; largest child peak {peak / MiB:.0f} MiB; "
            f"whole benchmark {wall:.0f} s")
    about = __doc__.split('\n\n', 2)[2].strip()            # the paragraphs after the usage lines
    md = (f"# Catalogue search: exact vs approximate (faiss IVF)\n\n`python benchmarks/retrieval.py` on {info}.\n\n"
          f"{about}\n\n{table_md(rows)}\n")
    Path(a.out).write_text(md)
    print(table_md(rows))
    print(f"\n{info}\nwrote {a.out}")


if __name__ == '__main__':
    main()

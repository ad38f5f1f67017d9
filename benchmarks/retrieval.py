"""Catalogue search speed, recall and memory: exact (one matrix product) vs faiss's IVF as cmmixer.recommend builds it.

    python benchmarks/retrieval.py                    # 1e3, 1e4, 1e5, 1e6 rows, clustered and uniform; writes benchmarks/retrieval_results.md
    python benchmarks/retrieval.py --sizes 1000 10000 --out /tmp/r.md

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
the share of the exact top 10 the approximate search returns. Memory: what a search holds (the vectors, and
for the IVF its own copy of them plus the centroids)). Where the tuned nprobe is every list (uniform
vectors: no index finds their neighbours without scanning everything), `Index.search(approx=True)` answers with the
exact search, which is then faster.
"""
import argparse, math, resource, sys, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import faiss
from cmmixer.recommend import IVFIndex, tune_nprobe, recall_at, topk

WIDTH = 8 * 128


def clustered(n, width, rng, centres, chunk=100_000):
    "n unit vectors: a random unit centre each + isotropic noise of the same norm, renormalised (float32)."
    x = np.empty((n, width), np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        c = centres[rng.integers(0, len(centres), m)]
        v = c + rng.standard_normal((m, width), dtype=np.float32) / math.sqrt(width)
        x[i:i + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return x


def uniform(n, width, rng):
    x = rng.standard_normal((n, width), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_search(x, q, k=10, chunk=262_144):
    "Top-k rows by dot product, scanning `x` in chunks (what cmmixer.recommend.Index.search does without files)."
    s = np.concatenate([q @ x[i:i + chunk].T for i in range(0, len(x), chunk)], 1)
    return topk(s, k)[0]


def timed(f, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return float(np.median(ts))



def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def data(n, kind, rng):
    if kind == 'uniform': return uniform(n, WIDTH, rng), uniform(64, WIDTH, rng)
    centres = rng.standard_normal((max(10, int(math.sqrt(n))), WIDTH), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return clustered(n, WIDTH, rng, centres), clustered(64, WIDTH, rng, centres)


def bench(n, rng, kind='clustered', hnsw=False):
    t = time.perf_counter(); x, q = data(n, kind, rng); gen_s = time.perf_counter() - t
    truth = exact_search(x, q)
    reps = 20 if n <= 100_000 else 5
    rows = [dict(rows=n, data=kind, search='exact', build_s=0.0, nprobe='-', ms_1=1e3 * timed(lambda: exact_search(x, q[:1]), reps),
                 ms_batch=1e3 * timed(lambda: exact_search(x, q), max(1, reps // 4)) / len(q), recall10=1.0, mem_mb=x.nbytes / 2**20)]
    t = time.perf_counter(); ivf = IVFIndex.build(x, seed=0); ivf.nprobe, tuned = tune_nprobe(ivf, x); build = time.perf_counter() - t
    rows.append(dict(rows=n, data=kind, search=f'faiss IVF (nlist {ivf.nlist})', build_s=build, nprobe=ivf.nprobe,
                     ms_1=1e3 * timed(lambda: ivf.search(q[:1], 10), reps), ms_batch=1e3 * timed(lambda: ivf.search(q, 10), max(1, reps // 4)) / len(q),
                     recall10=recall_at(ivf.search(q, 10)[0], truth), mem_mb=(x.nbytes + ivf.nbytes) / 2**20))
    del ivf
    if hnsw:
        t = time.perf_counter(); h = faiss.IndexHNSWFlat(WIDTH, 32, faiss.METRIC_INNER_PRODUCT); h.hnsw.efConstruction = 40
        h.add(x); build = time.perf_counter() - t
        for ef in (64, 256):
            h.hnsw.efSearch = ef
            rows.append(dict(rows=n, data=kind, search=f'faiss HNSW (M 32, efSearch {ef})', build_s=build, nprobe='-',
                             ms_1=1e3 * timed(lambda: h.search(q[:1], 10), reps), ms_batch=1e3 * timed(lambda: h.search(q, 10), 1) / len(q),
                             recall10=recall_at(h.search(q, 10)[1], truth), mem_mb=(x.nbytes + n * 32 * 2 * 4) / 2**20))
        del h
    print(f"  {n:>9,d} rows ({kind}): data {gen_s:.1f} s, peak RSS {peak_rss_mb():.0f} MiB", flush=True)
    return rows


def table_md(rows):
    head = "| rows | data | search | nprobe | build (s) | 1 query (ms) | per query in a batch of 64 (ms) | recall@10 vs exact | memory (MiB) |"
    out = [head, '|' + '---|' * 9]
    for r in rows:
        out.append(f"| {r['rows']:,d} | {r['data']} | {r['search']} | {r['nprobe']} | {r['build_s']:.1f} | {r['ms_1']:.2f} | "
                   f"{r['ms_batch']:.3f} | {r['recall10']:.3f} | {r['mem_mb']:.1f} |")
    return '\n'.join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[1_000, 10_000, 100_000, 1_000_000])
    p.add_argument('--hnsw-sizes', type=int, nargs='*', default=[10_000, 30_000])
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'retrieval_results.md'))
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    import torch; torch.set_num_threads(2); faiss.omp_set_num_threads(2)
    rng = np.random.default_rng(a.seed)
    t0 = time.perf_counter()
    rows = []
    for kind in ('clustered', 'uniform'):
        for n in sorted(set(a.sizes) | set(a.hnsw_sizes)): rows += bench(n, rng, kind, hnsw=n in a.hnsw_sizes)
    wall = time.perf_counter() - t0
    import os, platform
    info = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, numpy {np.__version__}, "
            f"faiss {faiss.__version__}; width {WIDTH}; peak RSS {peak_rss_mb():.0f} MiB; whole benchmark {wall:.0f} s")
    about = __doc__.split('\n\n', 2)[2].strip()            # the paragraph after the usage lines
    md = (f"# Catalogue search: exact vs approximate (faiss IVF)\n\n`python benchmarks/retrieval.py` on {info}.\n\n"
          f"{about}\n\n{table_md(rows)}\n")
    Path(a.out).write_text(md)
    print(table_md(rows)); print(f"\n{info}\nwrote {a.out}")


if __name__ == '__main__':
    main()

"""Catalogue search speed and memory: exact (one matrix product) vs the approximate IVF index of cmmixer.recommend.

    python benchmarks/retrieval.py                    # 1e3, 1e4, 1e5, 1e6 rows; writes benchmarks/retrieval_results.md
    python benchmarks/retrieval.py --sizes 1000 10000 --out /tmp/r.md

Rows are random unit vectors of the real index width: K * d = 8 clips x 128 (RetrieverConfig.proj_dim) = 1024
floats, the 'clip' score of a paper-scale retriever (a row is one track excerpt, flattened and scaled by
1/sqrt(K), so the score is a dot product). They are drawn around sqrt(rows) random centres (unit-norm centre plus
isotropic noise of the same total norm, cosine to the centre ~0.7), so that neighbours exist, as between real
tracks; on structureless uniform vectors every IVF misses most neighbours at small nprobe (one row of the table
shows that worst case). Queries are 64 fresh draws from the same mixture. Latency: one query at a time (median
of 20), and a batch of 64 queries (per query). Recall@10: the share of the exact top 10 that the approximate
search returns, over the 64 queries. Memory: the arrays a search needs (vectors + IVF lists/centroids) and the
process's peak resident memory.
"""
import argparse, math, resource, sys, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cmmixer.recommend import KMeansIVF, FaissIVF, faiss_available, default_nlist, topk

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


def recall(approx_rows, exact_rows):
    return float(np.mean([len(set(a[a >= 0]) & set(e)) / len(e) for a, e in zip(approx_rows, exact_rows)]))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(n, rng, kind='clustered', nprobes=(8, 32), backends=('kmeans',)):
    t = time.perf_counter()
    if kind == 'clustered':
        centres = rng.standard_normal((max(10, int(math.sqrt(n))), WIDTH), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x, q = clustered(n, WIDTH, rng, centres), clustered(64, WIDTH, rng, centres)
    else:
        x, q = uniform(n, WIDTH, rng), uniform(64, WIDTH, rng)
    gen_s = time.perf_counter() - t
    rows = []
    truth = exact_search(x, q)
    reps = 20 if n <= 100_000 else 3
    one = timed(lambda: exact_search(x, q[:1]), reps)
    batch = timed(lambda: exact_search(x, q), max(1, reps // 4)) / len(q)
    rows.append(dict(rows=n, data=kind, search='exact', build_s=0.0, nprobe='-', ms_1=1e3 * one, ms_batch=1e3 * batch,
                     recall10=1.0, mem_mb=x.nbytes / 2**20))
    for backend in backends:
        cls = FaissIVF if backend == 'faiss' else KMeansIVF
        t = time.perf_counter(); ivf = cls.build(x, seed=0); build = time.perf_counter() - t
        for npb in nprobes:
            found = ivf.search(x, q, 10, npb)[0]
            one = timed(lambda: ivf.search(x, q[:1], 10, npb), reps)
            batch = timed(lambda: ivf.search(x, q, 10, npb), max(1, reps // 4)) / len(q)
            rows.append(dict(rows=n, data=kind, search=f'IVF {backend} (nlist {ivf.nlist})', build_s=build, nprobe=npb,
                             ms_1=1e3 * one, ms_batch=1e3 * batch, recall10=recall(found, truth),
                             mem_mb=(x.nbytes + (ivf.nbytes if backend == 'kmeans' else 0)) / 2**20
                             if backend == 'kmeans' else ivf.nbytes / 2**20))
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
    p.add_argument('--out', default=str(ROOT / 'benchmarks' / 'retrieval_results.md'))
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args(argv)
    import torch; torch.set_num_threads(2)
    rng = np.random.default_rng(a.seed)
    backends = ('kmeans', 'faiss') if faiss_available() else ('kmeans',)
    t0 = time.perf_counter()
    rows = []
    for n in a.sizes: rows += bench(n, rng, backends=backends)
    wc = min(10_000, max(a.sizes))
    rows += bench(wc, rng, kind='uniform', backends=('kmeans',))
    wall = time.perf_counter() - t0
    import os, platform
    info = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, numpy {np.__version__}, "
            f"faiss {'installed' if faiss_available() else 'not installed (k-means IVF fallback only)'}; "
            f"width {WIDTH}; peak RSS {peak_rss_mb():.0f} MiB; whole benchmark {wall:.0f} s")
    about = __doc__.split('\n\n', 2)[2].strip()            # the paragraph after the usage lines
    md = (f"# Catalogue search: exact vs approximate (IVF)\n\n`python benchmarks/retrieval.py` on {info}.\n\n"
          f"{about}\n\n{table_md(rows)}\n")
    Path(a.out).write_text(md)
    print(table_md(rows)); print(f"\n{info}\nwrote {a.out}")


if __name__ == '__main__':
    main()

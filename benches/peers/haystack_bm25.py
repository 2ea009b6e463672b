#!/usr/bin/env python3
"""Haystack's side of scripts/bench-peers, and the comparison.

Reads what `cargo bench --bench peers -- kb DIR` wrote (DIR/chunks.jsonl:
one Haystack Document per loreweave chunk, with the text loreweave indexes;
DIR/queries.json; DIR/loreweave.json: loreweave's figures and top hits
from `search_body`, BM25 over the same chunk bodies),
indexes the chunks into an InMemoryDocumentStore with
bm25_algorithm="BM25Okapi" and tantivy's BM25 constants (k1 1.2, b 0.75),
runs the same queries through InMemoryBM25Retriever (top_k 5) and prints
index time, query p50/p99 for both, the ratios and the top-hit agreement.
Ratios are only quoted when the two agree on the top hit for at least
--min-agreement of the queries (so they did the same work).

Usage: haystack_bm25.py DIR [--passes N] [--min-agreement 0.8]
"""

import argparse
import json
import math
import statistics
import sys
import time

from haystack import Document
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore

TOP_K = 5


def quantile(sorted_values, q):
    return sorted_values[max(math.ceil(q * len(sorted_values)) - 1, 0)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--min-agreement", type=float, default=0.8)
    args = ap.parse_args()

    with open(f"{args.dir}/chunks.jsonl") as f:
        chunks = [json.loads(line) for line in f]
    with open(f"{args.dir}/queries.json") as f:
        queries = json.load(f)
    with open(f"{args.dir}/loreweave.json") as f:
        lw = json.load(f)

    start = time.perf_counter()
    store = InMemoryDocumentStore(
        bm25_algorithm="BM25Okapi", bm25_parameters={"k1": 1.2, "b": 0.75}, shared=False
    )
    store.write_documents([Document(id=c["id"], content=c["content"]) for c in chunks])
    index_ms = (time.perf_counter() - start) * 1e3
    retriever = InMemoryBM25Retriever(document_store=store, top_k=TOP_K)

    per_query = [[] for _ in queries]
    top = []
    for p in range(args.passes):
        for i, q in enumerate(queries):
            t = time.perf_counter()
            docs = retriever.run(query=q)["documents"]
            per_query[i].append(time.perf_counter() - t)
            if p == 0:
                top.append(docs[0].id if docs else None)
    medians = sorted(statistics.median(s) for s in per_query)
    hs = {"index_ms": index_ms, "p50_ms": quantile(medians, 0.5) * 1e3, "p99_ms": quantile(medians, 0.99) * 1e3}
    with open(f"{args.dir}/haystack.json", "w") as f:
        json.dump(dict(hs, top=top), f)

    agree = sum(1 for a, b in zip(lw["top"], top) if a is not None and a == b) / len(queries)
    load = open("/proc/loadavg").read().split()[0]
    print(f"retrieval: {lw['chunks']} chunks from {lw['files']} files ({lw['bytes'] / 1e6:.1f} MB), "
          f"{len(queries)} queries, top {TOP_K}, load average {load}")
    print(f"(query figures: p50/p99 over the queries of each query's median over "
          f"{lw['passes']} passes for loreweave, {args.passes} for Haystack)")
    print("| what | loreweave | Haystack BM25Okapi | Haystack / loreweave |")
    print("|---|---|---|---|")
    ok = agree >= args.min_agreement
    ratio = (lambda h, l: f"{h / l:.1f}x") if ok else (lambda h, l: "not quoted")
    print(f"| index (loreweave: files on disk -> on-disk index; Haystack: chunks -> memory) "
          f"| {lw['index_ms']:.0f} ms | {hs['index_ms']:.0f} ms | {ratio(hs['index_ms'], lw['index_ms'])} |")
    print(f"| query p50 (loreweave: search_body) | {lw['p50_ms'] * 1e3:.0f} µs | {hs['p50_ms']:.1f} ms | {ratio(hs['p50_ms'], lw['p50_ms'])} |")
    print(f"| query p99 | {lw['p99_ms'] * 1e3:.0f} µs | {hs['p99_ms']:.1f} ms | {ratio(hs['p99_ms'], lw['p99_ms'])} |")
    print(f"| top-hit agreement | {agree * 100:.1f} % | | |")
    print(f"loreweave's own search (title boosted, heading and body fields): "
          f"p50 {lw['uncapped_p50_ms'] * 1e3:.0f} µs, p99 {lw['uncapped_p99_ms'] * 1e3:.0f} µs "
          f"without a per-document cap; with the app's cap of three chunks "
          f"p50 {lw['capped_p50_ms'] * 1e3:.0f} µs, p99 {lw['capped_p99_ms'] * 1e3:.0f} µs; "
          f"first search after open {lw['first_search_ms']:.1f} ms")
    if not ok:
        print(f"top-hit agreement {agree * 100:.1f} % is below {args.min_agreement * 100:.0f} %: "
              f"ratios not quoted", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

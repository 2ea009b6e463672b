#!/usr/bin/env python3
"""Check the JSON Lines that `loreweave ask|scenario --json` printed (stdin).

Used by tests/peers/hayhooks.sh and scripts/check-llm. Only the standard
library. Exits 1 with a message naming every failed expectation.

Expectations (all optional, repeatable where it makes sense):
  --status S               the result line's status is S
  --no-lore                no_lore is a non-empty string (the fallback)
  --lore                   no_lore is null
  --source FILE            FILE is among the result's sources
  --text-contains S        the result text contains S
  --text-lacks S           the result text does not contain S
  --min-text-words N       the result text has at least N words with letters
  --event KIND:BACKEND:EV  some event has this kind, a backend matching the
                           regular expression BACKEND, and text EV (EV is a
                           regular expression matched against the whole text)
  --metrics-ok BACKEND     the metrics line reports ok >= 1 for a backend
                           whose name matches the regular expression BACKEND
"""

import argparse
import json
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="loreweave --json")
    ap.add_argument("--status")
    ap.add_argument("--no-lore", action="store_true")
    ap.add_argument("--lore", action="store_true")
    ap.add_argument("--source", action="append", default=[])
    ap.add_argument("--text-contains", action="append", default=[])
    ap.add_argument("--text-lacks", action="append", default=[])
    ap.add_argument("--min-text-words", type=int, default=0)
    ap.add_argument("--event", action="append", default=[])
    ap.add_argument("--metrics-ok", action="append", default=[])
    args = ap.parse_args()

    raw = sys.stdin.read()
    problems: list[str] = []
    events, results, metrics = [], [], []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number} is not JSON ({error}): {line[:200]!r}")
            continue
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind in ("event", "result", "metrics") and obj.get("v") != 2:
            problems.append(f"line {number}: format version {obj.get('v')!r}, expected 2")
        {"event": events, "result": results, "metrics": metrics}.get(kind, []).append(obj)

    if len(results) != 1:
        problems.append(f"expected exactly one result line, got {len(results)}")
    if len(metrics) != 1:
        problems.append(f"expected exactly one metrics line, got {len(metrics)}")
    result = results[0] if results else {}
    text = result.get("text") or ""
    sources = result.get("sources") or []

    if args.status and result.get("status") != args.status:
        problems.append(f"status {result.get('status')!r} (error {result.get('error')!r}), expected {args.status!r}")
    if args.lore and result.get("no_lore") is not None:
        problems.append(f"no_lore is {result.get('no_lore')!r}, expected null")
    if args.no_lore and not result.get("no_lore"):
        problems.append("no_lore is empty, expected a fallback reason")
    for source in args.source:
        if source not in sources:
            problems.append(f"sources {sources} lack {source!r}")
    for needle in args.text_contains:
        if needle not in text:
            problems.append(f"text lacks {needle!r}")
    for needle in args.text_lacks:
        if needle in text:
            problems.append(f"text contains {needle!r}")
    words = re.findall(r"[^\W\d_]{2,}", text)
    if len(words) < args.min_text_words:
        problems.append(f"text has {len(words)} word(s), expected at least {args.min_text_words}")
    for spec in args.event:
        kind, backend, event = spec.split(":", 2)
        if not any(
            e.get("kind") == kind
            and re.search(backend, str(e.get("backend")))
            and re.fullmatch(event, str(e.get("text")))
            for e in events
        ):
            problems.append(f"no event kind={kind} backend~/{backend}/ event~/{event}/")
    for backend in args.metrics_ok:
        backends = (metrics[0].get("backends") if metrics else None) or {}
        if not any(re.search(backend, name) and (v or {}).get("ok", 0) >= 1 for name, v in backends.items()):
            problems.append(f"metrics show no ok request for a backend ~/{backend}/: {sorted(backends)}")

    if problems:
        print(f"{args.label}: FAILED", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("--- events ---", file=sys.stderr)
        for e in events:
            print(f"  {e.get('t_ms')}ms {e.get('kind')} {e.get('backend')} {e.get('event')}", file=sys.stderr)
        print("--- result ---", file=sys.stderr)
        print(json.dumps(result, ensure_ascii=False)[:2000], file=sys.stderr)
        return 1
    print(
        f"{args.label}: ok (status {result.get('status')}, no_lore {result.get('no_lore')!r}, "
        f"sources {sorted(set(sources))}, {len(words)} words)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

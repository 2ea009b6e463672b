#!/usr/bin/env bash
# End-to-end: the inspector as a tracing tool, driven in tmux at 120x40 as a
# person would. A retrieval is made to time out (chaos hang, 1 s deadline),
# the table is filtered to timed-out requests, the waterfall of that
# pipeline opens, and the trace is exported (plain and redacted) and checked
# line by line. Every wait is bounded. Usage: tests/e2e/inspector.sh [bin]
set -euo pipefail

bin=${1:-target/release/loreweave}
bin=$(realpath "$bin")
work=$(mktemp -d)
session="lw-e2e-insp-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

send() { tmux send-keys -t "$session" -l "$1"; tmux send-keys -t "$session" Enter; }

tmux new-session -d -s "$session" -x 120 -y 40 \
  "cd '$work' && '$bin' --retrieval-timeout 1s; echo \$? > '$work/exit'; sleep 60"
wait_for "Request lifecycle" 10

echo "e2e inspector: one answered question, one whose retrieval times out"
send "who guards the waystone?"
wait_for "turn +pipeline +completed" 15
send "/chaos local hang"
wait_for "CHAOS local hang" 5
send "what lies beneath the mere?"
wait_for "└ retrieve +local +timed out" 10
wait_for "no lore: retrieval timed out after 1 s" 5
send "/chaos off"
wait_for "chaos off" 5

echo "e2e inspector: filter the table to timed-out requests"
tmux send-keys -t "$session" BTab   # Input -> Lifecycle (backwards)
sleep 0.2
tmux send-keys -t "$session" f
wait_for "filter: .*Enter applies" 5
tmux send-keys -t "$session" -l "state:timed-out"
tmux send-keys -t "$session" Enter
# Only the filter can put this in the header: the rows it hides.
wait_for "filter: state:timed-out · [0-9]+ hidden" 5
screen | grep -Eq "retrieve +local +completed" && fail "a completed retrieval is still listed"
screen | grep -Eq "retrieve +local +timed out" || fail "the timed-out retrieval is not listed"

echo "e2e inspector: Enter opens the pipeline's waterfall, Esc closes it"
tmux send-keys -t "$session" Enter
wait_for "┌ Pipeline" 5
wait_for "└ retrieve .*┆⏱" 5
wait_for "call observed past the deadline" 5
wait_for "↑↓ select · w return · Esc close" 5
tmux send-keys -t "$session" Escape
wait_gone "┌ Pipeline" 5
tmux send-keys -t "$session" f
wait_for "filter: .*Enter applies" 5
tmux send-keys -t "$session" C-u Enter   # an empty filter shows every row again
wait_gone "filter: state:timed-out" 5

echo "e2e inspector: w in the chat jumps to the reply's pipeline, w comes back"
tmux send-keys -t "$session" Tab Tab   # Lifecycle -> Input -> Chat
sleep 0.2
tmux send-keys -t "$session" w
wait_for "┌ Pipeline" 5
wait_for "turn [a-z0-9]{6} what lies beneath the mere" 5
tmux send-keys -t "$session" w
wait_gone "┌ Pipeline" 5
tmux send-keys -t "$session" BTab   # Chat -> Input
sleep 0.2

echo "e2e inspector: export the trace, plain and redacted"
send "/trace export plain.jsonl"
wait_for "trace written to .*plain.jsonl" 10
send "/trace export --redact redacted.jsonl"
wait_for "trace written to .*redacted.jsonl" 10

python3 - "$work/plain.jsonl" "$work/redacted.jsonl" <<'PY'
import json, sys
def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
plain, red = load(sys.argv[1]), load(sys.argv[2])
problems = []
h = plain[0]
if h.get("type") != "header" or h.get("format") != "loreweave-trace" or h.get("version") != 1:
    problems.append(f"bad header: {str(h)[:200]}")
if not h.get("complete"):
    problems.append("the TUI's trace says it is incomplete")
kinds = {l["type"] for l in plain}
for k in ("input", "event", "request"):
    if k not in kinds:
        problems.append(f"no {k} line")
events = [l for l in plain if l["type"] == "event"]
finals = [e for e in events if e["event"]["event"] == "final"]
if not any(e["kind"] == "retrieve" and e["event"]["outcome"]["outcome"] == "timed_out" for e in finals):
    problems.append("no timed-out retrieval among the final events")
if not any(e["event"]["event"] == "observed" for e in events):
    problems.append("the timed-out retrieval was not observed past its deadline")
requests = [l for l in plain if l["type"] == "request"]
ids = [r["id"] for r in requests]
if len(ids) != len(set(ids)):
    problems.append("a request is listed twice")
for r in requests:
    n = sum(1 for e in finals if e["id"] == r["id"])
    if r["outcome"] is not None and n != 1:
        problems.append(f"{r['id']} has {n} final events")
inputs = [l for l in plain if l["type"] == "input"]
asked = [i for i in inputs if i["input"]["input"] == "command" and i["input"]["data"]["command"] == "ask"]
if [a["input"]["data"]["args"]["text"] for a in asked] != ["who guards the waystone?", "what lies beneath the mere?"]:
    problems.append(f"the two questions are not the ask inputs: {asked}")
# Redacted: same shape, none of the user's text.
text = open(sys.argv[2]).read()
for secret in ("waystone", "beneath the mere", "Tamsin", "Orrel"):
    if secret in text:
        problems.append(f"{secret!r} survived --redact")
if len(red) < len(plain):
    problems.append(f"the redacted trace has {len(red)} lines, the plain one {len(plain)}")
if not red[0].get("redacted"):
    problems.append("the redacted header does not say so")
if "[redacted len=24 b3=" not in text:
    problems.append("the first question is not shown as its length and hash")
if problems:
    print("trace check failed:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"e2e inspector: trace ok ({len(plain)} lines: {len(inputs)} inputs, {len(events)} events, {len(requests)} requests)")
PY

tmux send-keys -t "$session" Tab    # Input -> Chat
sleep 0.2
tmux send-keys -t "$session" q
wait_file "$work/exit" 10
[[ $(cat "$work/exit") == 0 ]] || fail "exit code $(cat "$work/exit")"

echo "e2e inspector: an OTLP collector where nothing listens: the UI answers, drops are counted"
tmux kill-session -t "$session" 2>/dev/null || true
rm -f "$work/exit"
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
tmux new-session -d -s "$session" -x 120 -y 40 \
  "cd '$work' && OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$dead '$bin'; echo \$? > '$work/exit'; sleep 60"
wait_for "Request lifecycle" 10
send "who guards the waystone?"
wait_for "turn +pipeline +completed" 15
send "what of the bridge?"
wait_for "Ninefold Bridge" 15
# The exporter sends within a second and fails: only that puts this here.
send "/rag off"
wait_for "otel: [1-9][0-9]* dropped" 10
tmux send-keys -t "$session" Tab    # Input -> Chat
sleep 0.2
tmux send-keys -t "$session" q
wait_file "$work/exit" 10
[[ $(cat "$work/exit") == 0 ]] || fail "exit code $(cat "$work/exit") with a dead collector"
echo "e2e inspector: ok"

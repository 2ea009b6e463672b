#!/usr/bin/env bash
# Real-peer test: loreweave's `hayhooks` retriever against a real Hayhooks
# server (PyPI hayhooks + haystack-ai, from scripts/peers-env) serving an
# InMemoryBM25Retriever over assets/lore/ (tests/peers/lore/).
#
#   a. curl: POST /lore/run answers {"result": [...]} with the waystone file;
#   b. headless ask / scenario --json through it (flags, then env variables);
#   c. TUI in tmux: a question retrieves through hayhooks; hayhooks is then
#      killed mid-session, the next question's retrieval fails or times out
#      and the answer falls back to "no lore"; Tab q exits 0.
#
# Every wait is bounded; hayhooks and tmux are always stopped on exit.
# Needs python3 (3.11+), curl, tmux; PyPI for the first run (~1 min).
# Usage: tests/peers/hayhooks.sh path/to/loreweave  (PEERS_VERBOSE=1 prints
# the TUI screen after the fallback)
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 path/to/loreweave" >&2; exit 2; }
[[ -x $1 ]] || { echo "hayhooks.sh: $1 is not an executable" >&2; exit 2; }
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
for tool in curl tmux; do
  command -v "$tool" >/dev/null 2>&1 || { echo "hayhooks.sh: $tool is required" >&2; exit 2; }
done

# shellcheck source=scripts/peers-env
source scripts/peers-env # sets PEERS_VENV
py="$PEERS_VENV/bin/python"

work=$(mktemp -d)
sock="lw-peers-$$"   # a private tmux server, never the user's
session="peers"
hh_pid=""
hh_log="$work/hayhooks.log"

stop_hayhooks() {
  [[ -n $hh_pid ]] || return 0
  kill -TERM "$hh_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$hh_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$hh_pid" 2>/dev/null || true
  wait "$hh_pid" 2>/dev/null || true
  hh_pid=""
}
cleanup() {
  tmux -L "$sock" kill-server 2>/dev/null || true
  stop_hayhooks
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Nothing from the caller's loreweave setup leaks in: scratch XDG dirs, no
# LOREWEAVE_* variables (only the ones each step sets).
while read -r var; do unset "$var"; done < <(compgen -e | grep '^LOREWEAVE_' || true)
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"
export NO_COLOR=1

fail() {
  echo "peers FAIL: $*" >&2
  if tmux -L "$sock" has-session -t "$session" 2>/dev/null; then
    echo "--- screen ---" >&2
    tmux -L "$sock" capture-pane -p -t "$session" >&2 || true
  fi
  if [[ -s $hh_log ]]; then
    echo "--- hayhooks log (tail) ---" >&2
    tail -n 30 "$hh_log" >&2
  fi
  exit 1
}

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_hayhooks: serve tests/peers (every subdirectory is a pipeline; the
# lore one is POST /lore/run) on a free port; bounded wait for /status.
start_hayhooks() {
  local attempt i
  for attempt in 1 2 3; do
    port=$(free_port)
    PYTHONDONTWRITEBYTECODE=1 LOREWEAVE_LORE_DIR="$root/assets/lore" \
      "$PEERS_VENV/bin/hayhooks" run --host 127.0.0.1 --port "$port" \
      --pipelines-dir "$root/tests/peers" >"$hh_log" 2>&1 </dev/null &
    hh_pid=$!
    for ((i = 0; i < 600; i++)); do # 60 s
      if ! kill -0 "$hh_pid" 2>/dev/null; then
        break # died (for example the port was taken meanwhile): try again
      fi
      if curl -sf --max-time 2 "http://127.0.0.1:$port/status" 2>/dev/null | grep -q '"lore"'; then
        url="http://127.0.0.1:$port/lore/run"
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$hh_pid" 2>/dev/null; then
      fail "hayhooks did not report the lore pipeline on /status within 60 s"
    fi
    wait "$hh_pid" 2>/dev/null || true
    hh_pid=""
    echo "hayhooks exited during start-up (attempt $attempt), retrying" >&2
    tail -n 5 "$hh_log" >&2 || true
  done
  fail "hayhooks would not start"
}

# wait_log PATTERN [SECONDS]: poll the hayhooks log until grep -F matches.
wait_log() {
  local pattern=$1 limit=${2:-5} i
  for ((i = 0; i < limit * 10; i++)); do
    grep -Fq -- "$pattern" "$hh_log" && return 0
    sleep 0.1
  done
  fail "hayhooks log has no line with '$pattern' within ${limit}s (did loreweave call it?)"
}

# wait_for PATTERN [SECONDS]: poll the tmux screen until grep -E matches.
wait_for() {
  local pattern=$1 limit=${2:-15} i
  for ((i = 0; i < limit * 10; i++)); do
    if tmux -L "$sock" capture-pane -p -t "$session" 2>/dev/null | grep -Eq -- "$pattern"; then
      return 0
    fi
    sleep 0.1
  done
  fail "no match for /$pattern/ on screen within ${limit}s"
}

# headless LABEL CHECK-ARGS... -- LOREWEAVE-ARGS...: run loreweave headless
# (bounded), expect exit 0, and check its JSON Lines with check_jsonl.py.
headless() {
  local label=$1 rc=0
  shift
  local checks=()
  while [[ $1 != -- ]]; do checks+=("$1"); shift; done
  shift
  timeout 60 "$bin" "$@" </dev/null >"$work/out.jsonl" 2>"$work/err.txt" || rc=$?
  if [[ $rc != 0 ]]; then
    cat "$work/err.txt" >&2
    head -c 3000 "$work/out.jsonl" >&2
    fail "$label: loreweave exited $rc (124 = did not finish within 60 s)"
  fi
  "$py" tests/peers/check_jsonl.py --label "$label" "${checks[@]}" <"$work/out.jsonl" ||
    fail "$label: unexpected output (stderr: $(head -c 500 "$work/err.txt"))"
}

echo "peers: starting hayhooks ($("$PEERS_VENV/bin/pip" --disable-pip-version-check list 2>/dev/null | grep -E '^(hayhooks|haystack-ai) ' | tr -s ' ' | paste -sd ' '))"
start_hayhooks
echo "peers: hayhooks serves $url"

# --- a. the wire shape, with curl -------------------------------------------
echo "peers: a. curl POST /lore/run"
curl -sS --max-time 10 -X POST -H 'content-type: application/json' \
  -d '{"query": "who guards the waystone?", "top_k": 3}' "$url" >"$work/curl.json" ||
  fail "POST $url failed"
"$py" - "$work/curl.json" <<'PY' || fail "unexpected /lore/run response: $(head -c 1000 "$work/curl.json")"
import json, sys
body = json.load(open(sys.argv[1]))
assert isinstance(body, dict) and set(body) == {"result"}, f"top-level keys {list(body)}"
docs = body["result"]
assert isinstance(docs, list) and 1 <= len(docs) <= 3, f"{len(docs)} documents for top_k 3"
for d in docs:
    assert isinstance(d.get("id"), str) and isinstance(d.get("content"), str) and d["content"], d
    assert isinstance(d.get("score"), (int, float)), d
    assert isinstance(d["meta"].get("source"), str) and isinstance(d["meta"].get("title"), str), d
sources = [d["meta"]["source"] for d in docs]
assert "shattered-waystone.md" in sources, sources
print(f"peers: a. ok: {sources}")
PY

# --- b. headless through hayhooks -------------------------------------------
echo "peers: b. headless ask and scenario through hayhooks"
n_before=$(grep -c "Running pipeline 'lore'" "$hh_log" || true)
headless "ask (flags)" \
  --status completed --lore --source shattered-waystone.md --text-contains "[1]" \
  --event 'retrieve:hayhooks:completed' --metrics-ok hayhooks -- \
  --retriever hayhooks --retriever-url "$url" ask "who guards the waystone?" --json
wait_log "Running pipeline 'lore' | params={'query': 'who guards the waystone?'"
headless "scenario (flags)" \
  --status completed --lore --source first-encounter-copper-road.md --text-contains "[1]" \
  --event 'retrieve:hayhooks:completed' --metrics-ok hayhooks -- \
  --retriever hayhooks --retriever-url "$url" scenario "the first encounter" --json
wait_log "Running pipeline 'lore' | params={'query': 'the first encounter'"
LOREWEAVE_RETRIEVER=hayhooks LOREWEAVE_RETRIEVER_URL="$url" headless "ask (env variables)" \
  --status completed --lore --source shattered-waystone.md --text-contains "[1]" \
  --event 'retrieve:hayhooks:completed' --metrics-ok hayhooks -- \
  ask "who guards the waystone?" --json
n_after=$(grep -c "Running pipeline 'lore'" "$hh_log" || true)
((n_after >= n_before + 3)) || fail "hayhooks ran the lore pipeline $((n_after - n_before)) time(s) for 3 headless runs"

# --- c. TUI: hayhooks, then hayhooks dies mid-session -> fallback -------------
echo "peers: c. TUI through hayhooks, then hayhooks stopped mid-session"
rm -f "$work/exit"
tmux -L "$sock" -f /dev/null new-session -d -s "$session" -x 120 -y 40 \
  "cd '$work' && '$bin' --retriever hayhooks --retriever-url '$url' --retrieval-timeout 2s; echo \$? > '$work/exit'; sleep 60"
wait_for "Request lifecycle" 10
tmux -L "$sock" send-keys -t "$session" -l "who guards the waystone?"
tmux -L "$sock" send-keys -t "$session" Enter
wait_for "└ retrieve +hayhooks +completed" 20
wait_for "Warden Tamsin Orrel" 10
wait_for "\[1\]" 5
wait_for "turn +pipeline +completed" 10

echo "peers: c. stopping hayhooks (pid $hh_pid)"
stop_hayhooks
if curl -s --max-time 2 "$url" >/dev/null 2>&1; then
  fail "hayhooks still answers after it was stopped"
fi
tmux -L "$sock" send-keys -t "$session" -l "what lies beneath the mere?"
tmux -L "$sock" send-keys -t "$session" Enter
wait_for "└ retrieve +hayhooks +(failed|timed out)" 20
wait_for "no lore:" 10
if [[ ${PEERS_VERBOSE:-} == 1 ]]; then
  tmux -L "$sock" capture-pane -p -t "$session"
fi

echo "peers: c. quit with Tab q"
tmux -L "$sock" send-keys -t "$session" Tab
sleep 0.3
tmux -L "$sock" send-keys -t "$session" q
for ((i = 0; i < 100; i++)); do
  [[ -s $work/exit ]] && break
  sleep 0.1
done
[[ -s $work/exit ]] || fail "loreweave did not exit within 10 s of Tab q"
[[ $(cat "$work/exit") == 0 ]] || fail "loreweave exited $(cat "$work/exit"), expected 0"

# --- d. headless fallback with the server gone --------------------------------
echo "peers: d. headless ask with hayhooks gone falls back quickly"
start_s=$SECONDS
headless "ask (hayhooks down)" --status completed --no-lore -- \
  --retriever hayhooks --retriever-url "$url" --retrieval-timeout 2s ask "who guards the waystone?" --json
((SECONDS - start_s <= 15)) || fail "the no-lore fallback took $((SECONDS - start_s)) s with a 2 s retrieval deadline"

echo "peers: all checks passed"

#!/usr/bin/env bash
# Real-peer test: loreweave's OpenTelemetry export (OTLP/HTTP protobuf)
# against a real Arize Phoenix (PyPI arize-phoenix, pinned below).
#
#   a. a headless scenario whose retrieval times out (a Hayhooks-shaped
#      server on 127.0.0.1 that answers after 4 s, with a 1 s deadline) is
#      exported with OTEL_EXPORTER_OTLP_ENDPOINT; the spans are read back
#      from Phoenix's GET /v1/projects/default/spans and checked: names,
#      one trace, parent links, span kinds (CHAIN, RETRIEVER, LLM), GenAI
#      attributes, ERROR status and events of the timed-out child;
#   b. OTEL_SDK_DISABLED=true sends nothing.
#
# Every wait is bounded; Phoenix and the slow server are stopped on exit.
# Needs python3 (3.11+) and curl; PyPI for the first run (~2-5 min, ~850 MB
# into a venv under ${XDG_CACHE_HOME:-~/.cache}/loreweave-peers/, keyed by
# the pinned version, shared by every clone).
# Usage: tests/peers/phoenix.sh path/to/loreweave
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 path/to/loreweave" >&2; exit 2; }
[[ -x $1 ]] || { echo "phoenix.sh: $1 is not an executable" >&2; exit 2; }
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v curl >/dev/null 2>&1 || { echo "phoenix.sh: curl is required" >&2; exit 2; }

# --- the venv: arize-phoenix, pinned ------------------------------------------
pin="arize-phoenix==20.26.1"
cache="${LOREWEAVE_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/loreweave-peers}"
venv="$cache/venv-$pin"
stamp="$venv/.loreweave-peers-stamp"
if ! [[ -x $venv/bin/phoenix && -f $stamp && $(cat "$stamp") == "$pin" ]]; then
  echo "phoenix.sh: installing $pin into $venv (a few minutes, ~850 MB)" >&2
  mkdir -p "$cache"
  if [[ ! -x $venv/bin/python ]]; then
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  rm -f "$stamp"
  timeout 1500 "$venv/bin/pip" install --disable-pip-version-check -q \
    --timeout 60 --retries 2 "$pin" >&2 || { echo "phoenix.sh: pip install failed" >&2; exit 1; }
  "$venv/bin/python" -c 'import phoenix' || { echo "phoenix.sh: import check failed" >&2; exit 1; }
  printf '%s\n' "$pin" >"$stamp"
fi
py="$venv/bin/python"

work=$(mktemp -d)
px_pid=""
slow_pid=""
px_log="$work/phoenix.log"

stop() { # stop PID: TERM, a bounded wait, then KILL
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$slow_pid"
  stop "$px_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(LOREWEAVE_|OTEL_)' || true)
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"
export NO_COLOR=1

fail() {
  echo "peers FAIL: $*" >&2
  if [[ -s $px_log ]]; then
    echo "--- phoenix log (tail) ---" >&2
    tail -n 30 "$px_log" >&2
  fi
  exit 1
}

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- Phoenix ------------------------------------------------------------------
start_phoenix() {
  local attempt i
  for attempt in 1 2 3; do
    px_port=$(free_port)
    local grpc_port
    grpc_port=$(free_port)
    PHOENIX_WORKING_DIR="$work/phoenix" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$px_port" \
      PHOENIX_GRPC_PORT="$grpc_port" PYTHONDONTWRITEBYTECODE=1 \
      "$venv/bin/phoenix" serve >"$px_log" 2>&1 </dev/null &
    px_pid=$!
    for ((i = 0; i < 1200; i++)); do # 120 s
      kill -0 "$px_pid" 2>/dev/null || break
      if curl -sf --max-time 2 "http://127.0.0.1:$px_port/healthz" >/dev/null 2>&1; then
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$px_pid" 2>/dev/null; then
      fail "Phoenix did not answer /healthz within 120 s"
    fi
    wait "$px_pid" 2>/dev/null || true
    px_pid=""
    echo "phoenix exited during start-up (attempt $attempt), retrying" >&2
    tail -n 5 "$px_log" >&2 || true
  done
  fail "Phoenix would not start"
}

# --- a retriever that answers too late ----------------------------------------
start_slow_retriever() {
  slow_port=$(free_port)
  "$py" - "$slow_port" >"$work/slow.log" 2>&1 <<'PY' &
import http.server, json, sys, time

class Slow(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        time.sleep(4)
        body = json.dumps({"result": []}).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # loreweave gave up on the call: expected

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
PY
  slow_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    "$py" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$slow_port" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the slow retriever did not listen within 10 s"
}

echo "peers: starting Phoenix ($pin)"
start_phoenix
base="http://127.0.0.1:$px_port"
echo "peers: Phoenix at $base"
start_slow_retriever

# --- a. a scenario with a timed-out retrieval, exported -----------------------
echo "peers: a. headless scenario with OTEL_EXPORTER_OTLP_ENDPOINT=$base"
rc=0
OTEL_EXPORTER_OTLP_ENDPOINT="$base" timeout 60 "$bin" --retriever hayhooks \
  --retriever-url "http://127.0.0.1:$slow_port/lore/run" --retrieval-timeout 1s \
  scenario "the first encounter" --json >"$work/out.jsonl" 2>"$work/err.txt" || rc=$?
[[ $rc == 0 ]] || { cat "$work/err.txt" >&2; fail "loreweave scenario exited $rc"; }
if grep -q "otel:" "$work/err.txt"; then
  fail "spans were dropped: $(cat "$work/err.txt")"
fi

# Phoenix stores spans asynchronously: poll, bounded.
"$py" - "$base" "$work/out.jsonl" <<'PY' || fail "the spans in Phoenix are not as expected"
import json, sys, time, urllib.request

base, out = sys.argv[1], sys.argv[2]
events = [json.loads(l) for l in open(out) if l.strip()]
root_ids = {e["id"] for e in events if e.get("type") == "event" and e.get("kind") == "scenario"}
assert len(root_ids) == 1, f"scenario ids in --json: {root_ids}"
root_ulid = root_ids.pop()

spans = []
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with urllib.request.urlopen(f"{base}/v1/projects/default/spans?limit=100", timeout=5) as r:
        spans = json.load(r)["data"]
    if len(spans) >= 3:
        break
    time.sleep(0.5)
by_name = {s["name"]: s for s in spans}
print("peers: a. spans:", sorted(by_name))
assert set(by_name) == {"scenario", "retrieval hayhooks", "chat offline"}, sorted(by_name)
root, ret, gen = by_name["scenario"], by_name["retrieval hayhooks"], by_name["chat offline"]

# One trace, its id the scenario's ULID; children under the scenario.
traces = {s["context"]["trace_id"] for s in spans}
assert len(traces) == 1, traces
assert root["parent_id"] is None, root["parent_id"]
for child in (ret, gen):
    assert child["parent_id"] == root["context"]["span_id"], (child["name"], child["parent_id"])
assert root["attributes"]["loreweave.request.id"] == root_ulid

# Span kinds (OpenInference) and GenAI attributes.
assert (root["span_kind"], ret["span_kind"], gen["span_kind"]) == ("CHAIN", "RETRIEVER", "LLM"), \
    (root["span_kind"], ret["span_kind"], gen["span_kind"])
def attr(span, key):
    return span["attributes"].get(key)
assert attr(ret, "gen_ai.operation.name") == "retrieval"
assert attr(ret, "gen_ai.provider.name") == "hayhooks"
assert attr(ret, "gen_ai.request.top_k") == 5, attr(ret, "gen_ai.request.top_k")
assert attr(gen, "gen_ai.operation.name") == "chat"
assert attr(gen, "gen_ai.request.model") == "offline"
assert isinstance(attr(gen, "gen_ai.response.time_to_first_chunk"), float)
for span in (root, ret, gen):
    assert attr(span, "gen_ai.conversation.id") is not None, span["name"]
    assert "input.value" not in span["attributes"], "content without capture_content"

# The timed-out child: ERROR, a deadline event, observed, then abandoned at exit.
assert ret["status_code"] == "ERROR", ret["status_code"]
assert ret["status_message"] == "timed out", ret["status_message"]
assert attr(ret, "error.type") == "timeout"
names = [e["name"] for e in ret["events"]]
for want in ("dispatched", "deadline", "observed", "abandoned"):
    assert want in names, (want, names)
assert root["status_code"] == "OK" and gen["status_code"] == "OK", (root["status_code"], gen["status_code"])
assert "fallback" in [e["name"] for e in root["events"]]
print("peers: a. ok: one trace, parent links, kinds, attributes, timed-out child is ERROR")
PY

# --- b. OTEL_SDK_DISABLED=true: nothing sent -----------------------------------
echo "peers: b. OTEL_SDK_DISABLED=true sends nothing"
posts_before=$(grep -c 'POST /v1/traces' "$px_log" || true)
((posts_before >= 1)) || fail "Phoenix's log shows no POST /v1/traces for part a (cannot check part b)"
OTEL_SDK_DISABLED=true OTEL_EXPORTER_OTLP_ENDPOINT="$base" timeout 60 "$bin" \
  scenario "the first encounter" >/dev/null 2>"$work/err.txt" ||
  { cat "$work/err.txt" >&2; fail "loreweave scenario (disabled) failed"; }
sleep 1
posts_after=$(grep -c 'POST /v1/traces' "$px_log" || true)
[[ $posts_after == "$posts_before" ]] || fail "OTEL_SDK_DISABLED=true still sent $((posts_after - posts_before)) export(s)"

echo "peers: phoenix: all checks passed"

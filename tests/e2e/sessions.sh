#!/usr/bin/env bash
# End-to-end: sessions survive the process, in the real binary in tmux at
# 120x40. Chat, quit, start again: the conversation is there. Then a model
# that streams slowly: SIGKILL in the middle of its reply, start again: the
# question is there, the partial reply is there marked incomplete. Every
# wait is bounded and looks for text only the awaited event can put on
# screen. Usage: tests/e2e/sessions.sh [path/to/loreweave]
set -euo pipefail

bin=${1:-target/release/loreweave}
bin=$(realpath "$bin")
work=$(mktemp -d)
session="lw-e2e-sessions-$$"
drip_pid=""
trap 'tmux kill-session -t "$session" 2>/dev/null || true; [[ -n $drip_pid ]] && kill "$drip_pid" 2>/dev/null; rm -rf "$work"' EXIT

# Logs, config and sessions go to a scratch home, never the user's.
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

start() {
  tmux new-session -d -s "$session" -x 120 -y 40 \
    "cd '$work' && '$bin' $*; echo \$? > '$work/exit'; sleep 60"
  wait_for "Request lifecycle" 10
}

stop() {
  tmux kill-session -t "$session" 2>/dev/null || true
  rm -f "$work/exit"
}

# Quit with q (from the next pane: in the input it is text), as a user
# does, and wait for the exit.
quit() {
  tmux send-keys -t "$session" Tab
  sleep 0.2
  tmux send-keys -t "$session" q
  wait_file "$work/exit" 10
  stop
}

# Type a line into the input and send it.
ask() {
  tmux send-keys -t "$session" -l "$1"
  tmux send-keys -t "$session" Enter
}

echo "e2e sessions: chat, quit, start again: the conversation is there"
start
# The session database has opened once the session is named.
wait_for 'session "[0-9]{4}-' 10
ask "who guards the zzwaystone question?"
wait_for "Warden Tamsin Orrel" 10
quit
start
# Only the reopened session can show the old question after a restart.
wait_for "who guards the zzwaystone question\?" 10
wait_for "Warden Tamsin Orrel" 5
stop

# The log's start-up steps of the last start.
last_steps() {
  grep -h "start-up steps" "$XDG_STATE_HOME"/loreweave/* | tail -1
}

echo "e2e sessions: SIGKILL mid-stream keeps the question and the partial reply"
# An OpenAI-compatible server that streams one word every 200 ms, 60 words
# (bounded: it stops by itself after 60 s).
python3 - "$work/drip.port" <<'PY' &
import http.server, json, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(60):
            chunk = {"choices": [{"index": 0, "delta": {"content": f"word{i} "}}]}
            try:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)
        self.wfile.write(b"data: [DONE]\n\n")
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
threading.Timer(60, s.shutdown).start()
s.serve_forever()
PY
drip_pid=$!
wait_file "$work/drip.port" 10
cat > "$work/drip.toml" <<TOML
[llm]
provider = "openai"
base_url = "http://127.0.0.1:$(cat "$work/drip.port")/v1"
model = "m"
retries = 0
TOML
start --config "$work/drip.toml"
wait_for "who guards the zzwaystone question\?" 10
ask "tell me a zzslow story"
# Several words on screen (each saved within 250 ms), then kill -9.
wait_for "word8 " 15
pid=$(pgrep -f "^$bin --config $work/drip.toml" | head -1)
[[ -n $pid ]] || fail "no loreweave process to kill"
kill -9 "$pid"
sleep 0.5
stop
start --config "$work/drip.toml"
wait_for "tell me a zzslow story" 10
# The partial reply: at least the words shown 250 ms before the kill.
wait_for "word5 " 5
wait_for "incomplete" 5
quit

echo "e2e sessions: asked while the database is still opening, a question and a scenario go once it is open"
db=$XDG_DATA_HOME/loreweave/sessions.db
[[ -f $db ]] || fail "no session database at $db"
# Another process holds the database for 4 s, readers too (exclusive
# locking mode; a write lock alone lets loreweave read and show the session
# at once, its first write then waits): loreweave's open waits.
python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA locking_mode=EXCLUSIVE")
c.execute("BEGIN EXCLUSIVE"); c.execute("UPDATE sessions SET updated_ms = updated_ms")
open(sys.argv[2], "w").close(); time.sleep(4); c.execute("COMMIT")' \
  "$db" "$work/locked" 2>"$work/locker.err" &
locker=$!
for ((i = 0; i < 100; i++)); do [[ -e $work/locked ]] && break; sleep 0.1; done
[[ -e $work/locked ]] || fail "the database could not be locked: $(cat "$work/locker.err")"
start
ask "where is the zzearly ford?"
wait_for "1 question\(s\): sending once the session database has opened" 5
ask "generate scenario for the zzearly ambush"
wait_for "the scenario starts once the session database has opened" 5
wait "$locker"
# Only the open session can answer them: both complete, neither is cancelled.
wait_for "turn +pipeline +completed +.*zzearly ford" 15
wait_for "scenario +pipeline +completed +.*zzearly ambush" 15
screen | grep -q "cancelled" && fail "work asked before the open was cancelled"
quit
echo "e2e sessions: the quit left a copy of the first screen; a restart draws it, then works on the session"
start
wait_for "where is the zzearly ford\?" 10
# Asked on the copy: it goes to the session once the database is open.
ask "who guards the zzcopy gate?"
wait_for "turn +pipeline +completed +.*zzcopy gate" 15
steps=$(last_steps)
[[ $steps == *"first screen's copy read"* && $steps != *"session database opened"* ]] ||
  fail "the restart did not draw from the copy: $steps"
quit
# Another program writes: the copy the quit left is stale, and not used.
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("UPDATE messages SET text = ? WHERE text = ?", ("who guards the zzedited gate?", "who guards the zzcopy gate?"))
assert c.total_changes == 1, "the question was not stored"
c.commit()' "$XDG_DATA_HOME/loreweave/sessions.db"
start
wait_for "who guards the zzedited gate\?" 10
steps=$(last_steps)
[[ $steps == *"session database opened"* ]] || fail "a stale copy was drawn: $steps"
stop
echo "e2e sessions: all checks passed"

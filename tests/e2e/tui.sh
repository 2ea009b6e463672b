#!/usr/bin/env bash
# End-to-end: drive the real release binary in tmux at 120x40 as a person
# would, read the screen with capture-pane, and check that quitting (q, and
# SIGTERM) exits cleanly and leaves the terminal as it was (cooked mode).
# Every wait is bounded. Usage: tests/e2e/tui.sh [path/to/loreweave]
set -euo pipefail

bin=${1:-target/release/loreweave}
bin=$(realpath "$bin")
work=$(mktemp -d)
session="lw-e2e-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

# Logs and data go to a scratch home, never the user's.
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

start() {
  # The wrapper records the exit code and the terminal mode after exit.
  tmux new-session -d -s "$session" -x 120 -y 40 \
    "cd '$work' && '$bin' $*; echo \$? > '$work/exit'; stty -a > '$work/stty'; sleep 60"
  wait_for "Request lifecycle" 10
}

# The headless scenario for the same prompt has the same title (same seed).
title=$("$bin" scenario "the first encounter" </dev/null | sed -n 's/^# //p' | head -1)
[[ -n $title ]] || fail "headless scenario printed no title"

echo "e2e: scenario and question in the TUI"
start --retrieval-timeout 1s
tmux send-keys -t "$session" -l "generate scenario for the first encounter"
tmux send-keys -t "$session" Enter
wait_for "$title" 15
wait_for "scenario +pipeline +completed" 15
wait_for "└ retrieve +local +completed" 5
wait_for "└ generate +offline +completed" 5
# Scroll the scenario to its end: Tab to the Scenarios pane, End.
tmux send-keys -t "$session" Tab Tab
sleep 0.2
tmux send-keys -t "$session" End
wait_for "Sources" 5
wait_for "Reward" 5
tmux send-keys -t "$session" Tab Tab   # lifecycle, then back to the input
sleep 0.2

tmux send-keys -t "$session" -l "who guards the waystone?"
tmux send-keys -t "$session" Enter
wait_for "Warden Tamsin Orrel" 15
wait_for "\[1\]" 5
wait_for "turn +pipeline +completed" 5

echo "e2e: chaos hang -> retrieval times out, the answer falls back, the UI stays alive"
tmux send-keys -t "$session" -l "/chaos local hang"
tmux send-keys -t "$session" Enter
wait_for "CHAOS local hang" 5
tmux send-keys -t "$session" -l "what lies beneath the mere?"
tmux send-keys -t "$session" Enter
wait_for "└ retrieve +local +timed out" 10
wait_for "no lore: retrieval timed out after 1 s" 5
tmux send-keys -t "$session" -l "/chaos off"
tmux send-keys -t "$session" Enter
wait_for "chaos off" 5

echo "e2e: help overlay"
tmux send-keys -t "$session" F1
wait_for "Esc, q or \? closes this help" 5
tmux send-keys -t "$session" Escape
sleep 0.3

echo "e2e: quit with q from a pane"
tmux send-keys -t "$session" Tab
sleep 0.2
tmux send-keys -t "$session" q
wait_file "$work/exit" 10
[[ $(cat "$work/exit") == 0 ]] || fail "exit code $(cat "$work/exit"), expected 0"
wait_file "$work/stty" 5
grep -Eq '(^| )icanon( |$)' "$work/stty" || fail "terminal left in raw mode: $(cat "$work/stty")"
grep -Eq '(^| )echo( |$)' "$work/stty" || fail "terminal left without echo"
tmux kill-session -t "$session"
rm -f "$work/exit" "$work/stty"

echo "e2e: a model server that never answers: the UI stays alive, the chat times out"
# A loopback server that accepts connections and never answers (bounded: 60 s).
python3 - "$work/hang.port" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
s.settimeout(0.2)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held, end = [], time.time() + 60
while time.time() < end:
    try:
        held.append(s.accept()[0])
    except socket.timeout:
        pass
PY
hang_pid=$!
wait_file "$work/hang.port" 10
cat > "$work/hang.toml" <<TOML
[llm]
provider = "openai"
base_url = "http://127.0.0.1:$(cat "$work/hang.port")/v1"
model = "m"
first_token_timeout = "3s"
retries = 0
TOML
start --config "$work/hang.toml"
tmux send-keys -t "$session" -l "who guards the waystone?"
tmux send-keys -t "$session" Enter
wait_for "└ chat +openai +dispatched" 10
# While the call hangs, the UI answers keys at once.
tmux send-keys -t "$session" F1
wait_for "Esc, q or \? closes this help" 2
tmux send-keys -t "$session" Escape
wait_for "└ chat +openai +timed out" 10
wait_for "incomplete: generation timed out" 5
tmux send-keys -t "$session" Tab
sleep 0.2
tmux send-keys -t "$session" q
wait_file "$work/exit" 10
[[ $(cat "$work/exit") == 0 ]] || fail "exit code $(cat "$work/exit"), expected 0"
kill "$hang_pid" 2>/dev/null || true
tmux kill-session -t "$session"
rm -f "$work/exit" "$work/stty"

echo "e2e: Ctrl-C twice quits"
start
tmux send-keys -t "$session" C-c
wait_for "press Ctrl-C again to quit" 5
tmux send-keys -t "$session" C-c
wait_file "$work/exit" 10
[[ $(cat "$work/exit") == 0 ]] || fail "exit code $(cat "$work/exit") after Ctrl-C twice, expected 0"
tmux kill-session -t "$session"
rm -f "$work/exit" "$work/stty"

echo "e2e: SIGTERM restores the terminal"
start
pid=$(pgrep -n -f "^$bin( |$)" || true)
[[ -n $pid ]] || fail "cannot find the loreweave process"
kill -TERM "$pid"
wait_file "$work/exit" 10
[[ $(cat "$work/exit") == 143 ]] || fail "exit code $(cat "$work/exit") after SIGTERM, expected 143"
wait_file "$work/stty" 5
grep -Eq '(^| )icanon( |$)' "$work/stty" || fail "terminal left in raw mode after SIGTERM"
tmux kill-session -t "$session"

echo "e2e: all checks passed"

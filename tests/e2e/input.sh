#!/usr/bin/env bash
# End-to-end: the input box in the real binary in tmux at 120x40.
# Multi-line input with Alt-Enter and Ctrl-J, sent whole with Enter;
# Up recalls it; Tab completes `/ses` to `/session`; a 1 MB bracketed paste
# (tmux load-buffer + paste-buffer -p) does not send, is refused by
# [ui] max_input, and the UI still answers a key. Then the OSC 52 bytes of
# `y`, read from a pseudo-terminal (tests/e2e/osc52.py). Every wait is
# bounded. Usage: tests/e2e/input.sh [path/to/loreweave]
set -euo pipefail

bin=${1:-target/release/loreweave}
bin=$(realpath "$bin")
work=$(mktemp -d)
session="lw-e2e-input-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; tmux delete-buffer -b lw-e2e-paste-$$ 2>/dev/null || true; rm -rf "$work"' EXIT

export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

tmux new-session -d -s "$session" -x 120 -y 40 "cd '$work' && '$bin'; sleep 60"
wait_for "Request lifecycle" 10
wait_for 'session "[0-9]{4}-' 10

turns() { screen | grep -c "│[0-9a-z]\{6\} turn " || true; }

echo "e2e input: Alt-Enter and Ctrl-J break the line; Enter sends it whole"
tmux send-keys -t "$session" -l "zzfirst line"
tmux send-keys -t "$session" M-Enter
tmux send-keys -t "$session" -l "zzsecond line"
tmux send-keys -t "$session" C-j
tmux send-keys -t "$session" -l "who guards the waystone?"
wait_for "│zzsecond line" 5
wait_for "│who guards the waystone\?" 5
[[ $(turns) == 0 ]] || fail "a newline key sent the message"
tmux send-keys -t "$session" Enter
wait_for "Warden Tamsin Orrel" 10
wait_for "Ask the lore, or" 5

echo "e2e input: Up recalls the message, Down brings back the empty input"
tmux send-keys -t "$session" Up
wait_for "│zzfirst line +│" 5
wait_for "│who guards the waystone\? +│" 5
tmux send-keys -t "$session" Down
wait_for "Ask the lore, or" 5

echo "e2e input: Tab completes /ses to /session"
tmux send-keys -t "$session" -l "/ses"
tmux send-keys -t "$session" Tab
wait_for "│/session +│" 5
for _ in 1 2 3 4 5 6 7 8; do tmux send-keys -t "$session" BSpace; done
wait_for "Ask the lore, or" 5

echo "e2e input: a 1 MB bracketed paste does not send and the UI still answers"
before=$(turns)
python3 - "$work/paste.txt" <<'PY'
import sys
line = "the pasted lore goes on and on about the ford and the waystone " * 1
with open(sys.argv[1], "w") as f:
    n = 0
    while n < 1_000_000:
        f.write(line + "\n")
        n += len(line) + 1
PY
tmux load-buffer -b "lw-e2e-paste-$$" "$work/paste.txt"
tmux paste-buffer -p -b "lw-e2e-paste-$$" -t "$session"
wait_for "over \[ui\] max_input" 20
[[ $(turns) == "$before" ]] || fail "the paste sent a message"
# Enter refuses it, and it stays.
tmux send-keys -t "$session" Enter
wait_for "not sent: the message is 1\.0 MB" 10
[[ $(turns) == "$before" ]] || fail "a message over max_input was sent"
# The UI answers a key within a bounded time: F1 opens the help.
tmux send-keys -t "$session" F1
wait_for "┌ Keys" 5
tmux send-keys -t "$session" Escape
wait_gone "┌ Keys" 5

echo "e2e input: y writes OSC 52 with the copied text (read from a pty)"
python3 "$(dirname "$0")/osc52.py" "$bin" "$work"

echo "e2e input: OK"

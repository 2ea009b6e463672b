#!/usr/bin/env bash
# End-to-end: `/kb add` in the real binary, in tmux at 120x40. While a slow
# question is in flight (chaos latency on the retriever), `/kb add` ingests
# a fixture folder; the ingest completes, the status bar names the new
# knowledge base, and the next question is answered from the new document,
# citing it. Then the help lists `/kb add` and `/kb search` finds the file.
# Every wait is bounded and looks for text only the awaited event can put
# on screen. Usage: tests/e2e/kb.sh [path/to/loreweave]
set -euo pipefail

bin=${1:-target/release/loreweave}
bin=$(realpath "$bin")
work=$(mktemp -d)
session="lw-e2e-kb-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

# Logs, config and knowledge bases go to a scratch home, never the user's.
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# The chat pane's text: the inside of the box titled "Chat", its rows
# joined with single spaces (so words wrapped over two rows read as one).
chat_text() {
  screen | python3 -c '
import sys
rows = sys.stdin.read().splitlines()
top = next((i for i, r in enumerate(rows) if "┌ Chat " in r), None)
if top is None:
    sys.exit(0)
left = rows[top].index("┌ Chat ")
right = rows[top].index("┐", left)
inside = []
for row in rows[top + 1:]:
    if row[left:left + 1] == "└":
        break
    inside.append(row[left + 1:right])
print(" ".join(" ".join(inside).split()))
'
}

# wait_chat_order TEXT... [within SECONDS via $limit]: poll until the chat
# pane holds every TEXT (fixed strings), in this order.
wait_chat_order() {
  local limit=${limit:-20} i
  for ((i = 0; i < limit * 10; i++)); do
    if chat_text | python3 -c '
import sys
text, want, at = sys.stdin.read(), sys.argv[1:], 0
for w in want:
    at = text.find(w, at)
    if at < 0:
        sys.exit(1)
    at += len(w)
' "$@"; then
      return 0
    fi
    sleep 0.1
  done
  echo "--- chat pane ---" >&2
  chat_text >&2
  fail "the chat pane never showed, in order: $*"
}

send_line() {
  tmux send-keys -t "$session" -l "$1"
  tmux send-keys -t "$session" Enter
}

# The fixture: one file with a fact found nowhere else, and a second file.
fixture="$work/beacon-notes"
mkdir -p "$fixture"
cat > "$fixture/saltglass-beacon.md" <<'MD'
# The Saltglass Beacon

The Saltglass Beacon is tended by Keeper Ondry Vail, who trims its wick of
brinewort every dusk.

## Its light

The beacon burns green over the Glimmerflats and warns barges off the salt
shoals.
MD
cat > "$fixture/tidehouse.md" <<'MD'
# The Tidehouse

A low stone tollhouse on the causeway, where ferrymen wait out the spring
tides.
MD

echo "e2e kb: start on the sample lore"
tmux new-session -d -s "$session" -x 120 -y 40 \
  "cd '$work' && '$bin'; echo \$? > '$work/exit'; sleep 60"
wait_for "Request lifecycle" 10
wait_for "│ kb sample · [0-9]+ docs" 15

echo "e2e kb: a slow question is in flight while /kb add runs"
send_line "/chaos local latency 3s"
wait_for "CHAOS local latency 3" 5
send_line "who guards the waystone?"
wait_for "└ retrieve +local +dispatched" 5
send_line "/kb add $fixture"
wait_for "^│[0-9a-z]{6} +ingest +kb +" 5
# The question is still in flight after the ingest was asked for.
screen | grep -Eq "└ retrieve +local +dispatched" ||
  fail "the slow retrieval had already ended when /kb add was sent: the overlap was not tested"

echo "e2e kb: the ingest completes and the kb in use becomes 'default'"
wait_for "ingest +kb +completed" 30
wait_for "kb 'default': 2 changed \(2 added" 5
# The slow question finishes too.
wait_for "turn +pipeline +completed" 15
send_line "/chaos local off"
wait_gone "CHAOS local" 5
# With chaos on, a 120-column status bar has no room for the kb; now it has.
wait_for "│ kb default · 2 docs" 10

echo "e2e kb: the next question is answered from the new document"
send_line "who tends the Saltglass Beacon?"
limit=20 wait_chat_order "who tends the Saltglass Beacon?" "Ondry Vail" "Sources" "(saltglass-beacon.md ›"

echo "e2e kb: the help lists /kb add and /kb search"
tmux send-keys -t "$session" Tab   # chat pane: ? opens the help from a pane
sleep 0.2
tmux send-keys -t "$session" "?"
wait_for "Esc, q or \? closes this help" 5
# The slash commands are near the end of a help taller than the screen:
# page down until each row shows (a bounded number of pages).
page_to() {
  local pattern=$1 i
  for ((i = 0; i < 12; i++)); do
    screen | grep -Eq -- "$pattern" && return 0
    tmux send-keys -t "$session" PageDown
    sleep 0.2
  done
  wait_for "$pattern" 2
}
page_to "/kb add PATH\.\.\. +add files, folders or URLs"
page_to "/kb search QUERY +search the knowledge base in use"
tmux send-keys -t "$session" Escape
wait_gone "closes this help" 5

echo "e2e kb: /kb search lists the file, opens its passage, goes back, closes"
tmux send-keys -t "$session" i
sleep 0.2
send_line "/kb search Saltglass"
wait_for "Knowledge base search" 5
wait_for "\"Saltglass\" +[0-9]+ passages? · kb default" 10
wait_for "▸ +1 +[0-9.]+ +saltglass-beacon\.md › " 2
tmux send-keys -t "$session" Enter
wait_for "#1 The Saltglass Beacon" 5
wait_for "Keeper Ondry Vail" 2
tmux send-keys -t "$session" Escape
wait_for "▸ +1 +[0-9.]+ +saltglass-beacon\.md › " 5
tmux send-keys -t "$session" Escape
wait_gone "Knowledge base search" 5

echo "e2e kb: quit"
tmux send-keys -t "$session" Tab
sleep 0.2
tmux send-keys -t "$session" q
wait_file "$work/exit" 10
[[ $(cat "$work/exit") == 0 ]] || fail "exit code $(cat "$work/exit"), expected 0"

echo "e2e kb: all checks passed"

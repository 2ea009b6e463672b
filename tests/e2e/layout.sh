#!/usr/bin/env bash
# End-to-end: layout and terminal options in tmux. `z` zooms the focused
# pane and back; resizing the window below the minimum shows "terminal too
# small" and back above it shows the panes again; with --ascii no box
# drawing reaches the screen. Every wait is bounded.
# Usage: tests/e2e/layout.sh [path/to/loreweave]
set -euo pipefail

bin=${1:-target/release/loreweave}
bin=$(realpath "$bin")
work=$(mktemp -d)
session="lw-layout-$$"
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  tmux kill-session -t "$session-ascii" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

tmux new-session -d -s "$session" -x 100 -y 30 "$bin </dev/tty"
wait_for "Request lifecycle"
wait_keys

# Zoom the chat (Esc focuses it from the input), then back. A pause after
# Esc: an Esc and a key read together are Alt and that key, as in any
# terminal program.
tmux send-keys -t "$session" Escape
sleep 0.3
tmux send-keys -t "$session" z
wait_gone "Request lifecycle"
screen | grep -q " Chat " || fail "the zoomed chat is not on screen"
tmux send-keys -t "$session" z
wait_for "Request lifecycle"

# Below the minimum, and back.
tmux resize-window -t "$session" -x 30 -y 10
wait_for "terminal too small"
screen | grep -q "need 40 x 12" || fail "the minimum size is not named"
tmux resize-window -t "$session" -x 80 -y 24
wait_for "Request lifecycle"
wait_gone "terminal too small"
tmux send-keys -t "$session" q
wait_gone "Request lifecycle"

# ASCII only.
session="$session-ascii"
tmux new-session -d -s "$session" -x 120 -y 40 "$bin --ascii </dev/tty"
wait_for "Request lifecycle"
wait_keys
if screen | grep -q '[─│┌┐└┘├┤┬┴┼●◐○█░▓↑↓…•]'; then
  fail "box drawing or glyphs on screen with --ascii"
fi
screen | grep -q '+ Chat -' || fail "no ASCII border"
tmux send-keys -t "$session" F1
wait_for "Keys"
if screen | grep -q '[─│┌┐└┘├┤┬┴┼●◐○█░▓↑↓…•]'; then
  fail "box drawing or glyphs in the help with --ascii"
fi
echo "e2e layout: OK"

#!/usr/bin/env bash
# CPU per keypress in the real TUI, empty chat versus N questions in one chat
# (the issue's "after 300 questions every keypress costs 34 times the CPU").
# Runs the release binary in tmux at 200x60 with the offline generator and
# the built-in lore, types keys into the input one every 25 ms (each is its
# own frame: the TUI draws at most one frame per ~16 ms) and reads the
# process's CPU time from /proc/<pid>/task/*/schedstat (nanoseconds, all
# threads) before and after. An idle TUI uses no CPU, so the difference over
# the keys is what the keys cost: reading the key, the engine, drawing the
# frame and writing the changed cells to the terminal.
#
# Usage: benches/keypress_cpu.sh [path/to/loreweave] [questions] [keys]
set -euo pipefail

bin=$(realpath "${1:-target/release/loreweave}")
questions=${2:-300}
keys=${3:-400}
work=$(mktemp -d)
session="lw-cpu-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../tests/e2e/lib.sh"

cpu_ns() {
  local pid=$1 total=0 ns
  for f in /proc/"$pid"/task/*/schedstat; do
    read -r ns _ < "$f" || continue
    total=$((total + ns))
  done
  echo "$total"
}

# per_key: CPU nanoseconds per key over $keys keys (x then Backspace, so the
# input does not grow).
per_key() {
  local pid=$1 before after i
  sleep 1
  before=$(cpu_ns "$pid")
  for ((i = 0; i < keys / 2; i++)); do
    tmux send-keys -t "$session" -l x
    sleep 0.025
    tmux send-keys -t "$session" BSpace
    sleep 0.025
  done
  sleep 1
  after=$(cpu_ns "$pid")
  echo $(((after - before) / keys))
}

tmux new-session -d -s "$session" -x 200 -y 60 "exec '$bin'"
wait_for "Request lifecycle" 10
wait_gone "kb: indexing" 20
pid=$(tmux display-message -p -t "$session" '#{pane_pid}')

empty=$(per_key "$pid")
echo "empty chat: $((empty / 1000)) µs CPU per key"

for ((i = 1; i <= questions; i++)); do
  tmux send-keys -t "$session" -l "who guards the waystone? (question $i)"
  tmux send-keys -t "$session" Enter
done
wait_for "\(question $questions\)" 120
wait_for "queue 0 │" 300
long=$(per_key "$pid")
echo "$questions questions: $((long / 1000)) µs CPU per key"
awk -v a="$long" -v b="$empty" 'BEGIN { printf "ratio: %.1fx\n", a / b }'

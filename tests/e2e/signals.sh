#!/usr/bin/env bash
# End-to-end: signals sent from outside while the TUI runs in tmux.
# SIGINT, SIGQUIT, SIGTERM and SIGHUP: the TUI saves, restores the terminal
# (cooked mode: `icanon` and `echo`; the alternate screen left) and exits
# 128 + N; for SIGTERM, a question answered just before is in the session
# afterwards. SIGTSTP: the process stops (state T) with the terminal
# restored; SIGCONT takes the terminal again and redraws; a normal quit
# still exits 0. Every wait is bounded.
# Usage: tests/e2e/signals.sh [path/to/loreweave]
set -euo pipefail

bin=${1:-target/release/loreweave}
bin=$(realpath "$bin")
work=$(mktemp -d)
base="lw-sig-$$"
session="$base-0"
runs=0
# One tmux session per run (killing the only session would stop the tmux
# server under the next run's feet); all of them go at the end.
cleanup() {
  local n
  for ((n = 0; n <= runs; n++)); do
    tmux kill-session -t "$base-$n" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Logs and data go to a scratch home, never the user's.
export XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# start: loreweave in a fresh tmux session; the wrapper records the exit
# code and the terminal mode once it has exited. Sets $pid.
start() {
  local previous=$session
  runs=$((runs + 1))
  session="$base-$runs"
  rm -f "$work/exit" "$work/stty"
  tmux new-session -d -s "$session" -x 120 -y 40 \
    "cd '$work' && '$bin' --retrieval-timeout 1s; echo \$? > '$work/exit'; stty -a > '$work/stty'; sleep 60"
  wait_for "Request lifecycle" 10
  tmux kill-session -t "$previous" 2>/dev/null || true
  local shell_pid i
  shell_pid=$(tmux display -p -t "$session" '#{pane_pid}')
  pid=""
  for ((i = 0; i < 50; i++)); do
    pid=$(pgrep -P "$shell_pid" -x loreweave || true)
    [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || fail "no loreweave process under the pane's shell ($shell_pid)"
}

# state PID: the process state letter from /proc (R, S, T, ...).
state() {
  sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]) .*/\1/' "/proc/$1/stat" 2>/dev/null || echo gone
}

# wait_state PID LETTER [SECONDS]
wait_state() {
  local p=$1 want=$2 limit=${3:-5} i
  for ((i = 0; i < limit * 10; i++)); do
    [[ $(state "$p") == "$want" ]] && return 0
    sleep 0.1
  done
  fail "process $p is in state $(state "$p"), expected $want within ${limit}s"
}

alternate_on() {
  tmux display -p -t "$session" '#{alternate_on}'
}

# cooked FILE-OR-DASH: the `stty -a` text shows a restored terminal.
check_cooked() {
  local text=$1 what=$2
  grep -Eq '(^| )icanon( |;|$)' <<<"$text" || fail "$what: terminal left without icanon: $text"
  grep -Eq '(^| )echo( |;|$)' <<<"$text" || fail "$what: terminal left without echo: $text"
}

# check_exit NAME CODE: after exit, the code, the mode and the screen.
check_exit() {
  local name=$1 want=$2
  wait_file "$work/exit" 10
  [[ $(cat "$work/exit") == "$want" ]] || fail "$name: exit code $(cat "$work/exit"), expected $want"
  wait_file "$work/stty" 5
  check_cooked "$(cat "$work/stty")" "$name"
  [[ $(alternate_on) == 0 ]] || fail "$name: the alternate screen is still up"
}

for pair in INT:130 QUIT:131 TERM:143 HUP:129; do
  sig=${pair%%:*} code=${pair##*:}
  echo "e2e: SIG$sig from outside -> exit $code, terminal restored"
  start
  if [[ $sig == TERM ]]; then
    # A question answered just before the signal is saved.
    wait_for "session \"" 10
    tmux send-keys -t "$session" -l "who guards the waystone?"
    tmux send-keys -t "$session" Enter
    wait_for "Warden Tamsin Orrel" 15
    wait_for "turn +pipeline +completed" 5
  fi
  kill -s "$sig" "$pid"
  check_exit "SIG$sig" "$code"
done

echo "e2e: the answer given before SIGTERM was saved"
"$bin" sessions list </dev/null >"$work/list.txt" 2>&1 || fail "sessions list failed: $(cat "$work/list.txt")"
name=$(sed -n '1p' "$work/list.txt" | awk -F'  +' '{print $1}')
[[ -n $name ]] || fail "no session listed: $(cat "$work/list.txt")"
"$bin" sessions show "$name" </dev/null >"$work/show.txt" 2>&1 || fail "sessions show failed: $(cat "$work/show.txt")"
grep -q "who guards the waystone?" "$work/show.txt" || fail "the question was not saved: $(cat "$work/show.txt")"
grep -q "Warden Tamsin Orrel" "$work/show.txt" || fail "the answer was not saved: $(cat "$work/show.txt")"

echo "e2e: SIGTSTP stops with the terminal restored; SIGCONT redraws"
start
tty=$(tmux display -p -t "$session" '#{pane_tty}')
kill -s TSTP "$pid"
wait_state "$pid" T 5
for ((i = 0; i < 50; i++)); do
  [[ $(alternate_on) == 0 ]] && break
  sleep 0.1
done
[[ $(alternate_on) == 0 ]] || fail "SIGTSTP: the alternate screen is still up while stopped"
check_cooked "$(stty -F "$tty" -a)" "SIGTSTP (stopped)"
wait_gone "Request lifecycle" 5
kill -s CONT "$pid"
# Only a redraw puts the panes back on the (alternate) screen.
wait_for "Request lifecycle" 10
[[ $(alternate_on) == 1 ]] || fail "SIGCONT: not back on the alternate screen"
stty -F "$tty" -a | grep -Eq '(^| )-icanon( |;|$)' || fail "SIGCONT: raw mode not taken again"
# Still answering keys, and a normal quit still exits 0 with the terminal restored.
tmux send-keys -t "$session" -l "who guards the waystone?"
tmux send-keys -t "$session" Enter
wait_for "Warden Tamsin Orrel" 15
tmux send-keys -t "$session" Tab
sleep 0.2
tmux send-keys -t "$session" q
check_exit "quit after SIGCONT" 0

echo "e2e: signals ok"

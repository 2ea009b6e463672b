#!/usr/bin/env bash
# Shared by the tmux end-to-end scripts: read the screen, bounded waits, and
# a failure that shows the screen. The caller sets $session (the tmux
# session) before sourcing this file.

# A tmux server of the script's own, kept alive while it has no session
# (exit-empty off) and killed when the script exits (added to the caller's
# EXIT trap). On the shared default server, the server exits when the last
# session closes, and a new-session sent meanwhile fails with "server
# exited unexpectedly" (seen in CI: inspector.sh's last session closing as
# layout.sh started its first; layout.sh itself starts a session after
# quitting one). It reads no tmux config. Every `tmux` below this line goes
# to that server.
e2e_tmux_socket="lw-e2e-$$"
tmux() { command tmux -L "$e2e_tmux_socket" "$@"; }
command tmux -L "$e2e_tmux_socket" -f /dev/null start-server \; set-option -g exit-empty off
e2e_previous_exit() {
  local -a words
  eval "words=($(trap -p EXIT))"
  printf '%s' "${words[2]:-}"
}
e2e_exit=$(e2e_previous_exit)
trap "${e2e_exit:+$e2e_exit; }command tmux -L '$e2e_tmux_socket' kill-server 2>/dev/null || true" EXIT

fail() {
  echo "e2e FAIL: $*" >&2
  echo "--- screen ---" >&2
  tmux capture-pane -p -t "$session" >&2 2>/dev/null || true
  exit 1
}

screen() {
  tmux capture-pane -p -t "$session"
}

# wait_for PATTERN [SECONDS]: poll the screen until grep -E matches.
wait_for() {
  local pattern=$1 limit=${2:-15} i
  for ((i = 0; i < limit * 10; i++)); do
    if screen | grep -Eq -- "$pattern"; then
      return 0
    fi
    sleep 0.1
  done
  fail "no match for /$pattern/ within ${limit}s"
}

# wait_gone PATTERN [SECONDS]: poll the screen until grep -E no longer matches.
wait_gone() {
  local pattern=$1 limit=${2:-5} i
  for ((i = 0; i < limit * 10; i++)); do
    if ! screen | grep -Eq -- "$pattern"; then
      return 0
    fi
    sleep 0.1
  done
  fail "/$pattern/ still on screen after ${limit}s"
}

# wait_file FILE [SECONDS]: until FILE exists and is not empty.
wait_file() {
  local file=$1 limit=${2:-15} i
  for ((i = 0; i < limit * 10; i++)); do
    [[ -s $file ]] && return 0
    sleep 0.1
  done
  fail "$file did not appear within ${limit}s"
}

# wait_keys [SECONDS]: wait until the TUI just started reads keys. It does
# once the terminal has answered its keyboard-enhancement query, just after
# the first frame. A key sent before can reach crossterm in the same read
# as the terminal's answer, and an Esc then swallows the answer's ESC: the
# rest ("[?1;2c") reads as typed keys, and "?" opens the help (seen in CI
# under load). The log says when keys are read; each call waits for one
# more such line than the last call saw (needs XDG_STATE_HOME).
keys_seen=0
wait_keys() {
  local limit=${1:-15} i n
  for ((i = 0; i < limit * 10; i++)); do
    n=$(cat "$XDG_STATE_HOME"/loreweave/*.log* 2>/dev/null | grep -c "keyboard enhancement query answered" || true)
    if ((n > keys_seen)); then
      keys_seen=$n
      return 0
    fi
    sleep 0.1
  done
  fail "no 'keyboard enhancement query answered' in the log within ${limit}s"
}

#!/usr/bin/env python3
"""Time TUIs from spawn to their first complete frame, through a real pty.

Each case is started in a fresh pseudo-terminal of COLS x ROWS (pty.fork:
the child gets it as its controlling terminal, with the window size set
before exec). The parent reads the master side into a tiny screen model
(cursor moves, printable text; colours and other sequences are skipped)
until the case's marker text shows on one screen row. Every read takes
all the pty has at that moment before any of it is parsed, and the first
frame's time is when the read that brought the marker's bytes returned:
the time this script's own Python screen model then takes to parse them
grows with the frame's size (0.42 ms for loreweave's 4.2 KB frame of
three bordered panes, 0.13 ms for tenere's 1.2 KB, on the 2-core
machine), where a real terminal parses a few KB in microseconds, so it
is left out of the figure and printed on its own line (the median of
each case's parse of that read). Then it reads the child's peak RSS
(VmHWM in /proc/PID/status), sends SIGTERM (SIGKILL after 5 s) and drains the pty.
That read comes a moment after the frame, and the child has gone on
meanwhile; a case with "self_report": true (loreweave) gets a fresh
XDG_STATE_HOME, and the VmHWM the process read itself at its first frame
(its log's `start-up steps` line) is printed beside it.

Cases run interleaved so that load on a shared machine hits every case
alike, and counterbalanced: what ran just before a start moves its time
(on the 2-core machine a start of tenere right after a start of tenere
took 0.6-0.8 ms less than one right after a loreweave start, and a
loreweave start after loreweave 0.3-0.6 ms more than after tenere). So
each round runs, for every case C after the first (the reference R),
R C C R: every case, the reference included, starts half the time after
a start of its own and half the time after the other's. All the
reference's starts count. Prints one row per case: median, min and
max time to the first frame, median peak RSS, and the ratios to the first
case (the reference, e.g. the peer).

Usage: first_frame.py --runs N --cases cases.json [--json OUT]
cases.json: [{"name": ..., "argv": [...], "env": {...}, "marker": "...",
              "fresh_home": true|false, "self_report": true|false,
              "before": [["copy", SRC, DST] | ["remove", PATH], ...],
              "count_step": "..."}, ...]
With fresh_home, every start gets a new empty HOME (a new user); env HOME
is otherwise used as given. "before" runs before every start of the case
(files put in place or removed). With "count_step" (and self_report), a
line after the table says in how many starts the log's `start-up steps`
named that step.
"""

import argparse
import codecs
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time

CSI = re.compile(r"\x1b\[([0-9;?<=>]*)([ -/]*)([@-~])")


class Screen:
    """Just enough of a terminal to find text on a row: absolute and
    relative cursor moves, CR/LF, printable characters. Everything else
    (colours, modes, OSC strings) is skipped."""

    def __init__(self, cols, rows):
        self.cols, self.rows = cols, rows
        self.grid = [[" "] * cols for _ in range(rows)]
        self.row = self.col = 0
        self.pending = ""

    def feed(self, text):
        text = self.pending + text
        self.pending = ""
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c == "\x1b":
                if i + 1 >= n:
                    self.pending = text[i:]
                    return
                nxt = text[i + 1]
                if nxt == "[":
                    m = CSI.match(text, i)
                    if not m:
                        if n - i < 64:
                            self.pending = text[i:]
                            return
                        i += 2
                        continue
                    self.csi(m.group(1), m.group(3))
                    i = m.end()
                elif nxt in "]PX^_":
                    # String until BEL or ST.
                    end_bel = text.find("\x07", i + 2)
                    end_st = text.find("\x1b\\", i + 2)
                    ends = [e for e in (end_bel, end_st) if e >= 0]
                    if not ends:
                        self.pending = text[i:]
                        return
                    end = min(ends)
                    i = end + (1 if end == end_bel else 2)
                elif nxt in "()*+#%":
                    i += 3
                else:
                    i += 2
                continue
            if c == "\r":
                self.col = 0
            elif c == "\n":
                self.row = min(self.row + 1, self.rows - 1)
            elif c == "\b":
                self.col = max(self.col - 1, 0)
            elif c >= " " and c != "\x7f":
                if self.col < self.cols and self.row < self.rows:
                    self.grid[self.row][self.col] = c
                self.col += 1
            i += 1

    def csi(self, params, final):
        if params.startswith("?"):
            return
        nums = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
        first = nums[0] if nums else 0
        if final in "Hf":
            row = nums[0] if len(nums) > 0 and nums[0] else 1
            col = nums[1] if len(nums) > 1 and nums[1] else 1
            self.row, self.col = min(row - 1, self.rows - 1), min(col - 1, self.cols - 1)
        elif final == "G":
            self.col = max(first, 1) - 1
        elif final == "d":
            self.row = min(max(first, 1) - 1, self.rows - 1)
        elif final == "A":
            self.row = max(self.row - max(first, 1), 0)
        elif final == "B":
            self.row = min(self.row + max(first, 1), self.rows - 1)
        elif final == "C":
            self.col += max(first, 1)
        elif final == "D":
            self.col = max(self.col - max(first, 1), 0)
        elif final == "J" and first == 2:
            self.grid = [[" "] * self.cols for _ in range(self.rows)]

    def has(self, marker):
        return any(marker in "".join(row) for row in self.grid)

    def text(self):
        return "\n".join("".join(row).rstrip() for row in self.grid)


def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def drain(fd, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                if not os.read(fd, 65536):
                    return
            except OSError:
                return


def stop(pid, fd):
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        end = time.monotonic() + wait
        while time.monotonic() < end:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            drain(fd, 0.02)
    os.waitpid(pid, 0)


SELF_REPORT = re.compile(r"first_frame_memory=VmHWM ([0-9.]+) MB")


def self_reported(state_dir):
    """The VmHWM loreweave read itself at its first frame (its log's
    `start-up steps` line under XDG_STATE_HOME), in kB, and that line; or
    (None, None)."""
    for root, _, files in os.walk(state_dir):
        for name in files:
            with open(os.path.join(root, name), errors="replace") as f:
                for line in f:
                    m = SELF_REPORT.search(line)
                    if m:
                        return float(m.group(1)) * 1024, line
    return None, None


def prepare(case):
    """The case's "before" steps."""
    for step in case.get("before") or []:
        if step[0] == "copy":
            shutil.copy2(step[1], step[2])
        elif step[0] == "remove":
            try:
                os.remove(step[1])
            except FileNotFoundError:
                pass
        else:
            raise ValueError(f"{case['name']}: unknown step {step!r}")


def read_ready(fd):
    """What the pty's master side has now: one blocking read, then more
    while more is there at once. Empty at end of file."""
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            break
        chunks.append(data)
        r, _, _ = select.select([fd], [], [], 0)
        if not r:
            break
    return b"".join(chunks)


def start_once(case, cols, rows, timeout):
    """One start: (seconds to the read that brought the marker, peak RSS
    in kB, self-reported peak RSS at the first frame in kB or None, its
    steps line or None, seconds this script then took to parse that read)
    or raises."""
    prepare(case)
    env = dict(case.get("env") or {})
    home = None
    if case.get("fresh_home"):
        home = tempfile.mkdtemp(prefix="lw-first-frame-home-")
        env["HOME"] = home
    state = None
    if case.get("self_report"):
        state = tempfile.mkdtemp(prefix="lw-first-frame-state-")
        env["XDG_STATE_HOME"] = state
    argv = case["argv"]
    winsize = struct.pack("HHHH", rows, cols, 0, 0)
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: its pty is its controlling terminal
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    screen = Screen(cols, rows)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    found = None
    parse = None
    rss = None
    try:
        deadline = t0 + timeout
        while found is None:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RuntimeError(
                    f"{case['name']}: no {case['marker']!r} on screen within {timeout} s; screen:\n{screen.text()}")
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            # Everything the pty has now is read before any of it is
            # parsed (a 4 KB frame comes in two reads of the master side).
            data = read_ready(fd)
            read_at = time.perf_counter()
            if not data:
                raise RuntimeError(f"{case['name']}: exited before its first frame; screen:\n{screen.text()}")
            screen.feed(decoder.decode(data))
            if screen.has(case["marker"]):
                parsed_at = time.perf_counter()
                found = read_at - t0
                parse = parsed_at - read_at
                rss = peak_rss_kb(pid)
    finally:
        stop(pid, fd)
        os.close(fd)
        if home:
            shutil.rmtree(home, ignore_errors=True)
    own, steps = None, None
    if state:
        own, steps = self_reported(state)
        shutil.rmtree(state, ignore_errors=True)
    return found, rss, own, steps, parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    with open(args.cases) as f:
        cases = json.load(f)
    times = {c["name"]: [] for c in cases}
    rss = {c["name"]: [] for c in cases}
    own = {c["name"]: [] for c in cases}
    named = {c["name"]: 0 for c in cases}
    parses = {c["name"]: [] for c in cases}
    order = [c for case in cases[1:] for c in (cases[0], case, case, cases[0])] or cases
    for _ in range(args.runs):
        for case in order:
            t, kb, own_kb, steps, parse = start_once(case, args.cols, args.rows, args.timeout)
            parses[case["name"]].append(parse)
            if steps and case.get("count_step") and case["count_step"] in steps:
                named[case["name"]] += 1
            times[case["name"]].append(t)
            if kb is not None:
                rss[case["name"]].append(kb)
            if own_kb is not None:
                own[case["name"]].append(own_kb)
    ref = cases[0]["name"]
    ref_t = statistics.median(times[ref])
    ref_m = statistics.median(rss[ref]) if rss[ref] else None
    print(f"first frame through a pty at {args.cols}x{args.rows}, {args.runs} round(s) of {ref} X X {ref} "
          f"for each X (load average {open('/proc/loadavg').read().split()[0]})")
    print(f"| what | first frame: median (min-max) | peak RSS at it: median | its own reading at the frame "
          f"| time / {ref} | RSS / {ref} |")
    print("|---|---|---|---|---|---|")
    out = {}
    for case in cases:
        name = case["name"]
        t = statistics.median(times[name])
        m = statistics.median(rss[name]) if rss[name] else None
        o = statistics.median(own[name]) if own[name] else None
        out[name] = {"median_ms": t * 1e3, "min_ms": min(times[name]) * 1e3,
                     "max_ms": max(times[name]) * 1e3, "peak_rss_kb": m,
                     "own_peak_rss_kb": o, "samples_ms": [x * 1e3 for x in times[name]],
                     "harness_parse_ms": statistics.median(parses[name]) * 1e3}
        ratio_t = f"{t / ref_t:.2f}x"
        ratio_m = f"{m / ref_m:.2f}x" if m and ref_m else "-"
        mem = f"{m / 1024:.1f} MB" if m else "-"
        own_mem = f"{o / 1024:.1f} MB ({len(own[name])} of {len(times[name])})" if o else "-"
        print(f"| {name} | {t * 1e3:.1f} ms ({min(times[name]) * 1e3:.1f}-{max(times[name]) * 1e3:.1f}) "
              f"| {mem} | {own_mem} | {ratio_t} | {ratio_m} |")
    for case in cases:
        if case.get("count_step"):
            print(f"{case['name']}: its log named the step {case['count_step']!r} "
                  f"in {named[case['name']]} of {len(times[case['name']])} starts")
    print("not counted above, this script's own parsing of the read that brought the marker "
          "(median): " + ", ".join(f"{c['name']} {statistics.median(parses[c['name']]) * 1e3:.2f} ms"
                                   for c in cases))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

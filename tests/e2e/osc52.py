#!/usr/bin/env python3
"""OSC 52 from `y`, read as raw bytes from a pseudo-terminal.

Runs loreweave in a pty (120x40, no DISPLAY nor WAYLAND_DISPLAY, so no
clipboard tool is used), asks a question, selects the question in the chat
(Esc, Up, Up) and presses y; then looks for ESC ] 52 ; c ; BASE64 BEL in
what loreweave wrote, and checks the base64 decodes to the question.
Usage: osc52.py BIN SCRATCH_DIR. Every wait is bounded.
"""
import base64, fcntl, os, pty, re, select, signal, struct, sys, termios, time

bin_path, scratch = sys.argv[1], sys.argv[2]
QUESTION = "copy me, the ford question"

env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "TMUX")}
env.update(TERM="xterm-256color",
           XDG_STATE_HOME=f"{scratch}/osc-state", XDG_DATA_HOME=f"{scratch}/osc-data",
           XDG_CONFIG_HOME=f"{scratch}/osc-config")

pid, fd = pty.fork()
if pid == 0:
    os.chdir(scratch)
    os.execve(bin_path, [bin_path], env)

fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
out = bytearray()


def pump(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            out.extend(chunk)
            # Answer a cursor-position query, should one come.
            if b"\x1b[6n" in chunk:
                os.write(fd, b"\x1b[1;1R")


def wait_for(pattern, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pump(0.1)
        if re.search(pattern, bytes(out)):
            return
    fail(f"no {pattern!r} within {seconds}s")


def fail(why):
    print(f"e2e FAIL (osc52): {why}", file=sys.stderr)
    print(repr(bytes(out[-2000:])), file=sys.stderr)
    os.kill(pid, signal.SIGKILL)
    sys.exit(1)


try:
    wait_for(rb"lifecycle", 10)
    wait_for(rb"session \"\d{4}-", 10)
    os.write(fd, QUESTION.encode() + b"\r")
    wait_for(rb"Offline", 10)
    pump(0.3)
    os.write(fd, b"\x1b")  # Esc: focus the chat
    pump(0.3)
    os.write(fd, b"\x1b[A")  # Up: the reply
    pump(0.2)
    os.write(fd, b"\x1b[A")  # Up: the question
    pump(0.2)
    start = len(out)
    os.write(fd, b"y")
    end = time.monotonic() + 10
    found = None
    while time.monotonic() < end and not found:
        pump(0.1)
        found = re.search(rb"\x1b\]52;c;([A-Za-z0-9+/=]*)\x07", bytes(out[start:]))
    if not found:
        fail("no OSC 52 sequence after y")
    copied = base64.b64decode(found.group(1)).decode()
    if copied != QUESTION:
        fail(f"OSC 52 carried {copied!r}, not {QUESTION!r}")
    # The notice names the way (its cells may be drawn in pieces).
    wait_for(rb"OSC 52", 5)
    print("e2e osc52: OK")
finally:
    try:
        os.write(fd, b"q")
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except OSError:
        pass

#!/usr/bin/env python3
"""OSC 52 from `y`, read as raw bytes from a pseudo-terminal.

Runs loreweave in a pty (120x40, no DISPLAY nor WAYLAND_DISPLAY, so no
clipboard tool is used), asks a question, selects the question in the chat
(Esc, Up, Up) and presses y; then looks for ESC ] 52 ; c ; BASE64 BEL in
what loreweave wrote, and checks the base64 decodes to the question.
Usage: osc52.py BIN SCRATCH_DIR. Every wait is bounded.
"""
import base64, fcntl, os, pty, re, select, signal, struct, sys, termios, time

# The bench's screen model (cursor moves and text; other sequences skipped).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benches", "peers"))
from first_frame import Screen  # noqa: E402

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


def wait_on_screen(pattern, seconds):
    """Waits until the regex `pattern` matches a row of the drawn screen.
    The bytes alone will not do: ratatui writes only the cells that
    changed, so a word may reach the terminal in pieces."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pump(0.1)
        screen = Screen(120, 40)
        screen.feed(bytes(out).decode("utf-8", "replace"))
        if re.search(pattern, screen.text(), re.M):
            return
    fail(f"no {pattern!r} on the screen within {seconds}s:\n{screen.text()}")


def fail(why):
    print(f"e2e FAIL (osc52): {why}", file=sys.stderr)
    print(repr(bytes(out[-2000:])), file=sys.stderr)
    os.kill(pid, signal.SIGKILL)
    sys.exit(1)


try:
    wait_on_screen(r"lifecycle", 10)
    wait_on_screen(r"session \"\d{4}-", 10)
    os.write(fd, QUESTION.encode() + b"\r")
    wait_on_screen(r"Offline answer", 10)
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
    # The notice names the way. Its cells may be drawn in pieces (ratatui
    # writes only the cells that changed), so read the drawn screen.
    wait_on_screen(re.escape("copied message (26 B) via OSC 52"), 5)
    print("e2e osc52: OK")
finally:
    try:
        os.write(fd, b"q")
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except OSError:
        pass

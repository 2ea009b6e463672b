#!/usr/bin/env python3
"""Check that a captured loreweave screen (stdin) shows a model's answer in Chat.

Usage: chat_pane.py QUESTION [--min-words N] [--lacks TEXT]...

Takes the Chat box (the one whose top border reads "┌ Chat"), keeps the lines
after the QUESTION line (all of them if it scrolled out of view) and before
"Sources", drops one-word lines (speaker labels such as "you" or the backend
name), and requires at least N words with letters there. Any --lacks text
anywhere in the box fails the check (for example the offline label or
"no lore"). Prints the answer lines it found. Only the standard library.
"""

import argparse
import re
import sys


def chat_box(screen: list[str]) -> list[str]:
    for row, line in enumerate(screen):
        left = line.find("┌ Chat")
        if left < 0:
            continue
        right = line.find("┐", left)
        if right < 0:
            right = len(line)
        inner = []
        for below in screen[row + 1 :]:
            if left < len(below) and below[left] == "└":
                break
            inner.append(below[left + 1 : right].rstrip())
        return inner
    return []


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("question")
    ap.add_argument("--min-words", type=int, default=3)
    ap.add_argument("--lacks", action="append", default=[])
    args = ap.parse_args()

    screen = sys.stdin.read().splitlines()
    box = chat_box(screen)
    if not box:
        print("chat_pane: no Chat box on the screen", file=sys.stderr)
        return 1
    text = "\n".join(box)
    bad = [needle for needle in args.lacks if needle in text]

    lines = box
    for index, line in enumerate(box):
        if args.question in line:
            lines = box[index + 1 :]
    answer = []
    for line in lines:
        stripped = line.strip()
        if stripped == "Sources":
            break
        if len(stripped.split()) <= 1:
            continue
        answer.append(stripped)
    words = re.findall(r"[^\W\d_]{2,}", " ".join(answer))

    if bad or len(words) < args.min_words:
        if bad:
            print(f"chat_pane: the Chat pane shows {bad}", file=sys.stderr)
        if len(words) < args.min_words:
            print(f"chat_pane: {len(words)} answer word(s) in Chat, expected at least {args.min_words}", file=sys.stderr)
        return 1
    print(f"chat_pane: ok, {len(words)} answer words in Chat:")
    for line in answer[:8]:
        print(f"  | {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Text that came from a store, a sweep file or a table (names, stored error texts, size and
config strings) on its way to a terminal.

A terminal acts on some characters instead of showing them: ESC starts colour, cursor,
screen-clearing and window-title sequences, BEL rings, a carriage return overwrites the line,
and bidirectional overrides (U+202E) reorder what follows. A stored error text or a family
name holding them could hide, fake or scramble what `status`, `best`, `query`, `analyze` and
the error messages print. Every such character (whatever str.isprintable refuses) is shown
as its escape instead: ESC as \\x1b, U+202E as \\u202e.
"""

from __future__ import annotations


def _escape(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def printable(text: str, keep: str = "") -> str:
    """`text` with every character a terminal would act on escaped (those in `keep`, say
    "\\n" for a multi-line message, are left as they are)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else _escape(ch) for ch in text)

"""What an experiment or arm name may not hold.

A name is printed in log lines, the run's summary, Prometheus labels and dashboard legends: a
control character in one (a newline, an escape sequence, U+2028) would split a log line in two
or forge one, and an invisible one (a byte order mark, a zero-width space, a bidirectional
override) would let it pass for another name when printed. Such impressions are rejected as
``out_of_range`` (``events``), such side-table vectors as ``bad_name``; a declared name or a
simulator's is refused at start. The zero-width joiners (U+200C, U+200D) stay: scripts and
emoji need them.

>>> [bool(CONTROL_CHARACTER.search(n)) for n in ("control\\n", "a\\ufeffb", "\\u202eabc", "ünïcode ☃ 👩\\u200d💻")]
[True, True, True, False]
"""

from __future__ import annotations

import re

#: C0 controls, DEL, C1 controls, the line and paragraph separators, and the invisible ones:
#: zero-width space, left-to-right and right-to-left marks, bidirectional embeddings,
#: overrides and isolates, the byte order mark.
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def control_character(name: str) -> str | None:
    """The first such character of ``name`` as a code point (``"U+000A"``), or ``None``.

    >>> control_character("arm\\n"), control_character("arm")
    ('U+000A', None)
    """
    m = CONTROL_CHARACTER.search(name)
    return None if m is None else f"U+{ord(m.group()):04X}"


def unfit(name: str) -> str | None:
    """Why ``name`` cannot name an experiment or arm, in the words every refusal uses; ``None``
    when it can.

    >>> unfit("arm\\n"), unfit("arm")
    ('holds a control or invisible character (U+000A)', None)
    """
    bad = control_character(name)
    return None if bad is None else f"holds a control or invisible character ({bad})"

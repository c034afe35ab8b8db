"""What an experiment or arm name may not hold.

A name is printed in log lines, the run's summary, Prometheus labels and dashboard legends: a
control character in one (a newline, an escape sequence, U+2028) would split a log line in two,
forge one, or pass for another name when printed. Such impressions are rejected as
``out_of_range`` (``events``); a declared name or a simulator's is refused at start.

>>> bool(CONTROL_CHARACTER.search("control\\n")), bool(CONTROL_CHARACTER.search("ünïcode ☃"))
(True, False)
"""

from __future__ import annotations

import re

#: C0 controls, DEL, C1 controls, and the line and paragraph separators.
CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

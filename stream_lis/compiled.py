"""How the compiled inner loops (numba) are built: one set of options for every kernel module.

Kernels are compiled for one signature when their module is imported, and the machine code
is cached on disk where a directory is writable (``NUMBA_CACHE_DIR``, else ``__pycache__``
beside the module), so later imports load it in milliseconds. Where neither is writable (a
read-only image without ``NUMBA_CACHE_DIR``), every start compiles.
"""

from __future__ import annotations

import os

__all__ = ["JIT", "cache_writable"]


def cache_writable(module_file: str) -> bool:
    """Whether numba can cache here; with ``cache=True`` and nowhere to write, it refuses to import."""
    d = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(os.path.abspath(module_file)), "__pycache__")
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:
        return False
    return os.access(d, os.W_OK)


def JIT(module_file: str) -> dict:
    """``njit`` options for the kernels of one module.

    nogil: a kernel's arrays belong to the arm whose thread calls it, so the loops let the
    worker's other stage run meanwhile; no bounds checks on the hot loops.
    """
    return dict(cache=cache_writable(module_file), nogil=True, boundscheck=False)

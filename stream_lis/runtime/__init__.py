"""Where the core runs: ``embedded`` (files, stdin, the simulator; no broker) and ``kafka``."""

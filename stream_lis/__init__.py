"""stream_lis: the Leakage Impact Score, computed continuously on live recommender traffic.

See ``stream_lis.engine`` for the core and ``stream_lis.runtime`` for where it runs.
"""

__version__ = "0.1.0"

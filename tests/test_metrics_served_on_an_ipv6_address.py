"""``--host ::1`` (or any IPv6 address) serves /metrics there: the server binds the family the
address resolves to, not IPv4 whatever it is given."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from stream_lis.exporter import MetricsServer


def _healthz(host: str, url_host: str) -> int:
    """The status of /healthz from a server bound to ``host``, asked at ``url_host``."""
    srv = MetricsServer(CollectorRegistry(), port=0, host=host)
    try:
        with urllib.request.urlopen(f"http://{url_host}:{srv.port}/healthz", timeout=10) as resp:
            return resp.status
    finally:
        srv.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_metrics_are_served_on_ipv6_loopback():
    assert _healthz("::1", "[::1]") == 200


def test_ipv4_hosts_are_served_as_before():
    assert _healthz("127.0.0.1", "127.0.0.1") == 200


def test_an_empty_host_is_every_ipv4_interface_as_before():
    from stream_lis.exporter import address_family

    assert address_family("", 0) == socket.AF_INET and address_family("127.0.0.1", 0) == socket.AF_INET
    assert _healthz("", "127.0.0.1") == 200

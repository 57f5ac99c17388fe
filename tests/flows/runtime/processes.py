"""Ports and processes, for the tests that start real servers."""

from __future__ import annotations

import socket

import psutil


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(process: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its exit status is left)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def listening_ports(ports: set[int]) -> list[tuple[str, int]]:
    """Addresses of the listening sockets on any of `ports`, machine-wide."""
    return [
        (connection.laddr.ip, connection.laddr.port)
        for connection in psutil.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port in ports
    ]

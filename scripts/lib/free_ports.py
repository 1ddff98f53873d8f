#!/usr/bin/env python3
"""Prints N free loopback ports on one line (bound together, so they are distinct).

Usage: free_ports.py N
"""
import socket
import sys


def free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


if __name__ == "__main__":
    print(*free_ports(int(sys.argv[1])))

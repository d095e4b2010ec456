"""The unit suite's network guard works (otherwise "unit tests are pure" would be an unchecked claim)."""

import socket

import pytest


def test_the_guard_refuses_connections():
    with pytest.raises(RuntimeError, match="unit tests must not use the network"):
        socket.create_connection(("127.0.0.1", 9))

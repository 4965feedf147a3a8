import socket
import urllib.request

import pytest

from lesson_utils.offline import NetworkAccessError, is_loopback


def test_guard_blocks_a_public_address():
    with pytest.raises(NetworkAccessError, match="blocked"):
        socket.create_connection(("198.51.100.7", 443), timeout=1)


def test_guard_blocks_name_lookups():
    with pytest.raises(NetworkAccessError, match="download.pytorch.org"):
        urllib.request.urlopen("https://download.pytorch.org/models/resnet18.pth", timeout=1)


def test_guard_allows_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    client.close()
    server.close()


@pytest.mark.parametrize("host,expected", [("127.0.0.1", True), ("127.8.9.1", True),
                                           ("::1", True), ("localhost", True),
                                           ("10.0.0.1", False), ("example.org", False),
                                           (None, False)])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected

"""A TCP proxy, run as its own process by the S3 outage test: `python tcp_proxy.py LISTEN
TARGET` forwards 127.0.0.1:LISTEN to 127.0.0.1:TARGET and prints `ready` once it listens.

Clients reach the S3 server (moto) only through it, so SIGKILLing this process is the
server going down as clients see it (new connections refused, open ones reset), and
starting it again on the same port brings the server back with every object it held:
moto keeps its buckets in memory and would lose them if it were restarted itself."""

from __future__ import annotations

import socket
import sys
import threading


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):  # one side ended: end the other too, as a server would
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main() -> None:
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind after a kill
    server.bind(("127.0.0.1", listen))
    server.listen(128)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", target))
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main()

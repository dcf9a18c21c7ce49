#!/usr/bin/env python3
"""A TCP forwarder in front of a plain-HTTP test gate that counts what reaches it, so a test
can say how many connections a client opened and which requests it sent over them.

    count_proxy.py TARGET_PORT LOG

LOG gets one line per event, with the time (seconds since the epoch):
    accepted TIME N            connection N was accepted
    request TIME N METHOD PATH  a request line seen on connection N (client to gate)
    closed TIME N              connection N ended
Prints {"port": N} once listening on 127.0.0.1."""
import json
import re
import socket
import sys
import threading
import time

TARGET_PORT = int(sys.argv[1])
LOG = sys.argv[2]
lock = threading.Lock()
REQUEST_LINE = re.compile(rb"(?:^|\r\n)([A-Z]+) (\S+) HTTP/1\.[01]\r\n")


def log(*fields):
    with lock, open(LOG, "a") as f:
        f.write(" ".join(str(x) for x in fields) + "\n")


def pump(source, sink, number, scan):
    seen = b""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if scan:
                # Request lines may straddle reads: scan what is new plus a tail of what was.
                window = seen[-512:] + data
                start = len(seen[-512:])
                for match in REQUEST_LINE.finditer(window):
                    if match.end() > start:
                        log("request", time.time(), number, match.group(1).decode(), match.group(2).decode())
                seen = window
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (sink, source):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, number):
    log("accepted", time.time(), number)
    try:
        upstream = socket.create_connection(("127.0.0.1", TARGET_PORT))
    except OSError:
        client.close()
        log("closed", time.time(), number)
        return
    back = threading.Thread(target=pump, args=(upstream, client, number, False), daemon=True)
    back.start()
    pump(client, upstream, number, True)
    back.join()
    client.close()
    upstream.close()
    log("closed", time.time(), number)


def main():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    number = 0
    while True:
        client, _ = listener.accept()
        number += 1
        threading.Thread(target=serve, args=(client, number), daemon=True).start()


main()

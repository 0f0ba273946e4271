# SPDX-License-Identifier: MIT
# mirror_garbage.py - helper of tests/mirror_garbage.sh: an HTTP server on
# a free loopback port that answers every etcd gateway call with hostile
# replies (bad JSON, wrong types, huge numbers, bad base64, events past
# their header, a watch stream of garbage lines), cycling through them.
# Prints its port, then serves until killed.
import http.server
import itertools
import os
import sys

BAD = [
    b"not json at all",
    b"{\"header\":{\"revision\":\"99999999999999999999999\"}}",
    b"{\"header\":{\"revision\":\"5\"},\"kvs\":[{\"key\":\"!!!\",\"mod_revision\":\"2\"}]}",
    b"{\"header\":{\"revision\":\"5\"},\"kvs\":[{\"key\":\"L3QvYQ==\",\"mod_revision\":\"9\"}]}",
    b"{\"header\":{\"revision\":\"5\"},\"kvs\":{\"key\":1}}",
    b"{\"header\":{\"revision\":-1}}",
    b"{\"result\":{\"header\":{\"revision\":\"5\"},\"events\":[{\"kv\":{\"key\":\"L3QvYQ==\",\"mod_revision\":\"7\"}}]}}",
    b"[" * 5000,
    b"{\"header\":{\"revision\":\"5\"},\"succeeded\":\"yes\"}",
    bytes(range(256)),
    b"",
]
cycle = itertools.cycle(BAD)


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if self.path.endswith("/watch"):
            # a stream: a created message, then garbage lines, then close
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}\n")
            self.wfile.write(next(cycle) + b"\n")
            self.wfile.write(os.urandom(512) + b"\n")
            return
        body = next(cycle)
        self.send_response(200 if len(body) % 3 else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()

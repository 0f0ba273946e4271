# SPDX-License-Identifier: MIT
"""Description: examples/gunicorn in Debian's gunicorn - the registry is
mapped in the master (--preload), 2 workers fork, values are written after
the fork, and both workers (told apart by the pid in each response) serve
them over HTTP on a loopback port.  Skips (77) without /usr/bin/gunicorn.
"""
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

GUNICORN = "/usr/bin/gunicorn"
if not os.access(GUNICORN, os.X_OK):
    print("SKIP: %s not installed (Debian: apt-get install gunicorn)"
          % GUNICORN)
    sys.exit(77)

import shmreg  # noqa: E402
from shmreg_testlib import die_with_parent  # noqa: E402

SRC = os.environ["SHMREG_SOURCE_DIR"]
REG = "gunicorn-example"


def fail(msg):
    raise AssertionError(msg)


class Gunicorn:
    """gunicorn on a listening socket the test made itself (127.0.0.1, port
    0: the kernel picks a free one, so parallel tests never collide and no
    port can be taken between choosing and binding it)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        rfd, wfd = os.pipe()
        env = dict(os.environ,
                   SHMREG_EXAMPLE_REGISTRY=REG,
                   SHMREG_TEST_LISTEN_FD=str(self.listener.fileno()),
                   SHMREG_TEST_READY_FD=str(wfd))
        conf = os.path.join(SRC, "tests", "python", "gunicorn_ready.conf.py")
        try:
            self.proc = subprocess.Popen(
                [GUNICORN, "--preload", "--workers", "2", "-c", conf,
                 "--chdir", os.path.join(SRC, "examples", "gunicorn"),
                 "app:app"],
                env=env, pass_fds=(self.listener.fileno(), wfd),
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        finally:
            os.close(wfd)
        self.ready = os.fdopen(rfd, "rb", buffering=0)
        self.workers = set()

    def wait_workers(self, n, timeout=30):
        """Read worker pids from the ready pipe until n came, or fail."""
        end = time.monotonic() + timeout
        buf = b""
        while len(self.workers) < n:
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                fail("gunicorn workers not ready (exit %r, got %r)"
                     % (self.proc.poll(), self.workers))
            r, _, _ = select.select([self.ready], [], [], left)
            if r:
                chunk = self.ready.read(64)
                if not chunk:
                    fail("ready pipe closed")
                buf += chunk
                *lines, buf = buf.split(b"\n")
                self.workers.update(int(x) for x in lines)

    def stop(self):
        """SIGTERM to the master by pid, SIGKILL after 10 s; then make
        sure no worker is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.workers:
            try:
                os.kill(pid, signal.SIGKILL)  # only if it outlived a kill
            except ProcessLookupError:
                pass
        self.ready.close()
        self.listener.close()


class Request:
    """An HTTP/1.0 GET read line by line (the /wait body streams)."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock.sendall(b"GET %s HTTP/1.0\r\nHost: test\r\n\r\n"
                          % path.encode())
        self.f = self.sock.makefile("rb")
        status = self.f.readline()
        if not status.startswith(b"HTTP/1."):
            fail("bad status line %r" % status)
        self.status = int(status.split()[1])
        while self.f.readline() not in (b"\r\n", b"\n", b""):
            pass

    def json_line(self):
        line = self.f.readline()
        if not line:
            fail("response ended early")
        return json.loads(line)

    def close(self):
        self.f.close()
        self.sock.close()


def get(port, key):
    r = Request(port, "/get/" + key)
    try:
        return r.status, r.json_line()
    finally:
        r.close()


def main():
    w = shmreg.Writer(REG, truncate=True)
    w.put("greeting", b"before the fork")
    g = Gunicorn()
    try:
        g.wait_workers(2)
        print("gunicorn master %d, workers %s, port %d"
              % (g.proc.pid, sorted(g.workers), g.port))
        # the registry was mapped once, in the master, before the fork
        r = Request(g.port, "/")
        out = r.json_line()
        r.close()
        if out["mapped_in"] != g.proc.pid or out["pid"] not in g.workers:
            fail("GET /: %r (master %d)" % (out, g.proc.pid))
        # written after both workers forked: they must see it
        w.put("greeting", b"after the fork")

        # Hold one worker in r.wait() with a /wait request: sync workers
        # serve one request at a time, so the second /wait must be
        # served by the other worker.  Both answer once the gate exists.
        held = [Request(g.port, "/wait/gate?also=greeting")]
        first = held[0].json_line()["pid"]
        held.append(Request(g.port, "/wait/gate?also=greeting"))
        second = held[1].json_line()["pid"]
        if {first, second} != g.workers:
            fail("the two held requests went to %d and %d, workers %s"
                 % (first, second, sorted(g.workers)))
        w.put("gate", b"open")
        for r, pid in zip(held, (first, second)):
            out = r.json_line()
            r.close()
            want = {"pid": pid, "key": "gate", "value": "open",
                    "also": {"greeting": "after the fork"}}
            if out != want:
                fail("worker %d answered %r, want %r" % (pid, out, want))
            print("worker %d: %r" % (pid, out))

        # plain gets, and a change after that: whichever worker serves
        for value in (b"third", b"fourth \xe2\x9c\x93"):
            w.put("greeting", value)
            status, out = get(g.port, "greeting")
            if status != 200 or out["value"] != value.decode() or \
                    out["pid"] not in g.workers:
                fail("GET /get/greeting: %d %r" % (status, out))
        w.delete("greeting")
        status, out = get(g.port, "greeting")
        if status != 404 or out["value"] is not None:
            fail("GET of a deleted key: %d %r" % (status, out))
    finally:
        g.stop()
        w.close()
    for pid in g.workers:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except OSError as e:
            if e.errno == errno.EPERM:
                continue
        fail("worker %d still runs after stop" % pid)
    print("PASS")


if __name__ == "__main__":
    main()

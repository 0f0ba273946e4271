#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Description: shmregd --metrics-listen and shmregctl stats --prometheus,
# read with the Prometheus project's own text parser
# (python3-prometheus-client): every family has HELP and TYPE, counters end
# in _total, and the values are exact: entries and revision after N puts,
# requests_total by op and result and errors_total by errno after a known
# series of requests.  The HTTP endpoint answers malformed, oversized and
# other-method requests with their status, survives garbage and idle
# connections, and still serves afterwards.
import errno
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("skip: python3-prometheus-client is not installed")
    sys.exit(SKIP)

SHMREGD = os.environ.get("SHMREGD")
SHMREGCTL = os.environ.get("SHMREGCTL")
if not SHMREGD or not SHMREGCTL:
    print("skip: SHMREGD / SHMREGCTL not set (run through ctest)")
    sys.exit(SKIP)

REG = "metrics_prom"
NPUTS = 25
NDELS = 3
DEADLINE = 20.0


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_daemon(sockdir):
    """Start shmregd on a free loopback port; retry when another test
    took the port between our probe and the daemon's bind."""
    for _ in range(5):
        port = free_port()
        rd, wr = os.pipe()
        p = subprocess.Popen(
            [SHMREGD, "--registry", REG, "--truncate",
             "--socket", os.path.join(sockdir, "d.sock"),
             "--metrics-listen", "127.0.0.1:%d" % port,
             "--ready-fd", str(wr)],
            pass_fds=(wr,), stderr=subprocess.PIPE)
        os.close(wr)
        ready, _, _ = select.select([rd], [], [], DEADLINE)
        line = os.read(rd, 16) if ready else b""
        os.close(rd)
        if line == b"READY\n":
            return p, port
        try:
            p.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            fail("shmregd neither ready nor exited")
        err = p.stderr.read().decode(errors="replace")
        if p.returncode == 69:
            print("skip: shmregd: io_uring unavailable: " + err.strip())
            sys.exit(SKIP)
        if "Address already in use" not in err:
            fail("shmregd exited %d: %s" % (p.returncode, err))
    fail("no free port after 5 tries")


def ctl(*args, ok=(0,)):
    r = subprocess.run([SHMREGCTL, "-r", REG] + list(args),
                       capture_output=True, timeout=DEADLINE)
    if r.returncode not in ok:
        fail("shmregctl %s: exit %d: %s" % (" ".join(args), r.returncode,
                                             r.stderr.decode()))
    return r.stdout.decode()


def families(text, where):
    """Parse, check the conventions, return {(sample, labels): value}."""
    out = {}
    fams = list(text_string_to_metric_families(text))
    if not fams:
        fail(where + ": no metric families")
    for f in fams:
        if not f.name.startswith("shmreg_"):
            fail("%s: %s: not under shmreg_" % (where, f.name))
        if f.type not in ("counter", "gauge"):
            fail("%s: %s: type %s" % (where, f.name, f.type))
        if not f.documentation:
            fail("%s: %s: no HELP" % (where, f.name))
        for s in f.samples:
            if f.type == "counter" and not s.name.endswith("_total"):
                fail("%s: counter sample %s lacks _total" % (where, s.name))
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in out:
                fail("%s: %s%s twice" % (where, s.name, s.labels))
            out[key] = s.value
    return out


def value(m, name, where, **labels):
    key = (name, tuple(sorted(labels.items())))
    if key not in m:
        fail("%s: no sample %s%s" % (where, name, labels))
    return m[key]


def expect(m, name, want, where, **labels):
    got = value(m, name, where, **labels)
    if got != want:
        fail("%s: %s%s = %r, want %r" % (where, name, labels, got, want))


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=DEADLINE) as r:
        ctype = r.headers.get("Content-Type")
        if ctype != "text/plain; version=0.0.4; charset=utf-8":
            fail("Content-Type %r" % ctype)
        return r.read().decode()


def raw(port, data, shut=True):
    """Send @data, return the whole answer (the server closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    return got


def status_of(answer):
    line = answer.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) < 2 or parts[0] != b"HTTP/1.1":
        fail("not an HTTP/1.1 status line: %r" % answer[:80])
    return int(parts[1])


def check_http(port):
    cases = [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"GET / HTTP/1.0\r\n\r\n", 200),
        (b"GET /nope HTTP/1.1\r\n\r\n", 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", 405),
        (b"GET /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400),
        (b"PUT /metrics HTTP/1.1\r\n\r\n", 405),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.1\nHost: x\n\n", 400),
        (b"\x00\xff\xfe garbage \r\n\r\n", 400),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: y\r\n" * 1000, 431),
    ]
    for req, want in cases:
        got = status_of(raw(port, req, shut=(want != 431)))
        if got != want:
            fail("%r...: status %d, want %d" % (req[:30], got, want))
    head = raw(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    hdr, _, body = head.partition(b"\r\n\r\n")
    if status_of(head) != 200 or body or b"Content-Length: " not in hdr:
        fail("HEAD: %r" % head[:200])
    # a request that stops half-way, then closes: no answer, no harm
    raw(port, b"GET /metr")
    # more idle connections than the endpoint keeps: the oldest go, and
    # a scrape still gets through
    idle = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            for _ in range(20)]
    text = scrape(port)
    for s in idle:
        s.close()
    return text


def main():
    sockdir = tempfile.mkdtemp(prefix="shmreg-metrics-", dir="/tmp")
    os.environ["SHMREG_SOCKET"] = os.path.join(sockdir, "d.sock")
    p, port = start_daemon(sockdir)
    try:
        for i in range(NPUTS):
            ctl("--no-embedded", "put", "k%02d" % i, "value-%d" % i)
        for i in range(NDELS):
            ctl("--no-embedded", "del", "absent%d" % i, ok=(1,))
        where = "GET /metrics"
        m = families(scrape(port), where)
        expect(m, "shmreg_entries", NPUTS, where, registry=REG)
        expect(m, "shmreg_revision", NPUTS, where, registry=REG)
        expect(m, "shmreg_requests_total", NPUTS, where, registry=REG,
               op="put", result="ok")
        expect(m, "shmreg_requests_total", 0, where, registry=REG,
               op="put", result="error")
        expect(m, "shmreg_requests_total", NDELS, where, registry=REG,
               op="del", result="error")
        expect(m, "shmreg_requests_total", NPUTS + NDELS, where,
               registry=REG, op="hello", result="ok")
        expect(m, "shmreg_errors_total", NDELS, where, registry=REG,
               errno="ENOENT")
        expect(m, "shmreg_writer_state", 1, where, registry=REG,
               state="open")
        expect(m, "shmreg_writer_pid", p.pid, where, registry=REG)
        expect(m, "shmreg_used_bytes",
               sum(len("k%02d" % i) + len("value-%d" % i)
                   for i in range(NPUTS)), where, registry=REG)
        expect(m, "shmreg_daemon_metrics_scrapes_total", 1, where)
        value(m, "shmreg_connections", where, registry=REG)

        after = families(check_http(port), "after hostile requests")
        bad = value(after, "shmreg_daemon_metrics_bad_requests_total",
                    "after hostile requests")
        # 10 refused requests, the half request (closed, unanswered:
        # not counted) and at least 4 idle connections pushed out
        if bad < 10 + 4:
            fail("bad_requests_total %r, want >= 14" % bad)
        expect(after, "shmreg_entries", NPUTS, "after hostile requests",
               registry=REG)
        if p.poll() is not None:
            fail("shmregd died: exit %r" % p.returncode)

        where = "shmregctl stats --prometheus"
        c = families(ctl("stats", "--prometheus"), where)
        for key, v in c.items():
            if key not in after:
                fail("%s: %s%s not in the daemon's" % (where, key[0],
                                                        dict(key[1])))
            if key[0] not in ("shmreg_writer_uptime_seconds",
                              "shmreg_waiters") and v != after[key]:
                fail("%s: %s = %r, the daemon says %r" % (where, key[0],
                                                          v, after[key]))
        expect(c, "shmreg_entries", NPUTS, where, registry=REG)
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        try:
            os.unlink(os.path.join(sockdir, "d.sock"))
        except OSError:
            pass
        for f in os.listdir(sockdir):
            os.unlink(os.path.join(sockdir, f))
        os.rmdir(sockdir)
    if p.returncode != 0:
        fail("shmregd exit %d" % p.returncode)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_python - the Python module's get against its peers, same data,
same run (issue 12):

  shmreg     r.get(key)                    the registry, mapped read-only
  lmdb       txn.get(key)                  python3-lmdb, one read txn,
                                           its environment on tmpfs
  redis      client.get(key)               redis-py GET over loopback TCP
                                           to a redis-server of our own
  dict+copy  bytes(d[key])                 a dict lookup plus a copy of
                                           the value into a new bytes
  (loop)     for key in order: pass        the interpreter's share of
                                           every figure above

and, for r.get and txn.get, the same loop holding each result until three
gets later (held[i % 3] = get(key)): the registry then cannot reuse a
result object (it keeps two for reuse, docs/python.md) and allocates one
per get, as txn.get always does.

Every figure is ns per call (CPU time of the benchmark thread, so that
time spent descheduled on a shared machine does not count; wall time for
Redis, whose GET is a round trip) from a Python loop over the same random key
order (a new one each run, its key objects made in access order), the
median of --runs runs (the peers interleaved within each run).
Targets: shmreg >= 3x faster than lmdb; shmreg within 2x of dict+copy.
Each store's values are checked against the data before timing; a wrong
value exits 1.  A missed target does not: targets are reported.

Usage: bench_python.py [--keys N] [--ops N] [--redis-ops N] [--runs N]
                       [--quick]
Env:   SHMREG_DIR  where the registry and the LMDB files live (/dev/shm)
"""
import argparse
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import shmreg

SKIP = 77


def note_env(args):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = f.read().strip()
    print("bench_python: %d entries (16 B keys, 64 B values), %d gets per "
          "run (redis %d), median of %d runs"
          % (args.keys, args.ops, args.redis_ops, args.runs))
    print("cpu: %s, %d allowed CPUs; kernel %s; loadavg %s"
          % (model, len(os.sched_getaffinity(0)), platform.release(), load))
    print("python %s (%s); shmreg %s" % (platform.python_version(),
                                         sys.executable, shmreg.__version__))


def key(i):
    return b"key:%012d" % i


def value(i):
    return (b"v%015d" % i) * 4


# ---- the stores ----

class Shmreg:
    name = "shmreg r.get"

    def __init__(self, n, base):
        self.reg = "bench-python-%d" % os.getpid()
        self.base = base
        self.w = shmreg.Writer(os.path.join(base, "shmreg." + self.reg),
                               truncate=True, initial_entries=n,
                               initial_arena=n * 96)
        put = self.w.put
        for i in range(n):
            put(key(i), value(i))
        self.r = shmreg.open(os.path.join(base, "shmreg." + self.reg))
        self.get = self.r.get

    def close(self):
        self.r.close()
        self.w.close()
        for f in os.listdir(self.base):
            if f.startswith("shmreg." + self.reg):
                os.unlink(os.path.join(self.base, f))


class Lmdb:
    name = "lmdb txn.get"

    def __init__(self, n, base):
        import lmdb
        self.dir = tempfile.mkdtemp(prefix="bench-python-lmdb-", dir=base)
        self.env = lmdb.open(self.dir, map_size=max(n * 512, 1 << 24),
                             sync=False, metasync=False, readahead=False,
                             lock=True)
        with self.env.begin(write=True) as txn:
            cur = txn.cursor()
            cur.putmulti(((key(i), value(i)) for i in range(n)),
                         append=True)
        self.txn = self.env.begin(buffers=False)
        self.get = self.txn.get

    def close(self):
        self.txn.abort()
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    name = "redis GET (loopback)"

    def __init__(self, n, base):
        import redis
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = None
        for attempt in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--loglevel", "warning"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            self.client = redis.Redis(host="127.0.0.1", port=self.port)
            if self.wait_ready(redis):
                break
            self.stop()   # the port was taken meanwhile: another one
        else:
            raise RuntimeError("redis-server did not start")
        pipe = self.client.pipeline(transaction=False)
        for i in range(n):
            pipe.set(key(i), value(i))
            if i % 10000 == 9999:
                pipe.execute()
        pipe.execute()
        self.get = self.client.get

    def wait_ready(self, redis, timeout=10):
        """Until it answers PING (it has no readiness notification we can
        take without parsing its log), or it exits, or the deadline."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                return self.client.ping()
            except redis.ConnectionError:
                time.sleep(0.01)
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        self.client.close()
        self.stop()


class DictCopy:
    name = "dict lookup + bytes copy"

    def __init__(self, n, base):
        # bytearray values: bytes(ba) copies them, as r.get copies out of
        # the segment (bytes(b) of a bytes would return b itself)
        self.d = {key(i): bytearray(value(i)) for i in range(n)}
        d = self.d
        self.get = lambda k: bytes(d[k])

    def timed(self, order, clock):
        d = self.d
        t0 = clock()
        for k in order:
            bytes(d[k])
        return clock() - t0

    def close(self):
        self.d = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(get, order, clock):
    t0 = clock()
    for k in order:
        get(k)
    return clock() - t0


def timed_held(get, order, clock):
    """The get loop with each result held for three more gets, so that
    no result object is free for reuse when the next get runs."""
    held = [None, None, None]
    t0 = clock()
    for i, k in enumerate(order):
        held[i % 3] = get(k)
    return clock() - t0


def empty_loop(order, clock):
    t0 = clock()
    for k in order:
        pass
    return clock() - t0


def check(store, n):
    """Every store must return the data: a sample of present keys, and
    one absent key."""
    rnd = random.Random(7)
    for i in [0, n - 1] + [rnd.randrange(n) for _ in range(2000)]:
        got = store.get(key(i))
        if got != value(i):
            print("FAIL: %s returned %r for %r" % (store.name, got, key(i)))
            sys.exit(1)
    if store.name != DictCopy.name and store.get(b"absent") is not None:
        print("FAIL: %s found an absent key" % store.name)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--ops", type=int, default=1000000)
    ap.add_argument("--redis-ops", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true",
                    help="a small run that only checks it all works")
    args = ap.parse_args()
    if args.quick:
        args.keys, args.ops, args.redis_ops, args.runs = 20000, 20000, 500, 2
    base = os.environ.get("SHMREG_DIR") or "/dev/shm"
    note_env(args)

    try:
        import lmdb  # noqa: F401
        import redis  # noqa: F401
    except ImportError as e:
        print("SKIP: %s (Debian: apt-get install python3-lmdb python3-redis)"
              % e)
        sys.exit(SKIP)
    if not (shutil.which("redis-server") or
            os.access("/usr/bin/redis-server", os.X_OK)):
        print("SKIP: no redis-server (Debian: apt-get install redis-server)")
        sys.exit(SKIP)

    stores = []
    try:
        t0 = time.monotonic()
        for cls in (Shmreg, Lmdb, DictCopy, Redis):
            stores.append(cls(args.keys, base))
        print("filled in %.1f s" % (time.monotonic() - t0))
        for s in stores:
            check(s, args.keys)
        rnd = random.Random(1)
        idx = [rnd.randrange(args.keys) for _ in range(args.ops)]
        results = {s.name: [] for s in stores}
        results["loop"] = []
        held = [s for s in stores if isinstance(s, (Shmreg, Lmdb))]
        for s in held:
            results[s.name + ", held"] = []
        for run in range(args.runs):
            # the keys of each run's random order are made in that order,
            # so reading the key objects is sequential (as bench_get lays
            # its keys out in access order): what is timed is the lookup
            rnd.shuffle(idx)
            order = None
            order = [key(i) for i in idx]
            for s in stores:
                ops = order[:args.redis_ops] if isinstance(s, Redis) \
                    else order
                # in-process calls: this thread's CPU time, which time
                # spent descheduled on a busy machine does not inflate;
                # a Redis GET is a round trip: wall time
                clock = time.perf_counter_ns if isinstance(s, Redis) \
                    else time.thread_time_ns
                if isinstance(s, DictCopy):
                    ns = s.timed(ops, clock)
                else:
                    ns = timed(s.get, ops, clock)
                results[s.name].append(ns / len(ops))
            results["loop"].append(empty_loop(order, time.thread_time_ns) /
                                   len(order))
            for s in held:
                results[s.name + ", held"].append(
                    timed_held(s.get, order, time.thread_time_ns) /
                    len(order))
    finally:
        for s in stores:
            s.close()

    med = {k: statistics.median(v) for k, v in results.items()}
    sh, lm, dc, rd = (med[Shmreg.name], med[Lmdb.name], med[DictCopy.name],
                      med[Redis.name])
    print("\nPython gets, ns per call (median of %d runs; each run's "
          "figures: %s)" % (args.runs, ", ".join(
              "%s %s" % (k.split()[0] + (" held" if k.endswith("held")
                                         else ""),
                         "/".join("%.0f" % x for x in v))
              for k, v in results.items())))
    print("%-44s %16s   %s" % ("figure", "measured", "target"))
    print("%-44s %16s   %s" % ("------", "--------", "------"))

    def row(what, measured, target="", ok=None):
        verdict = "" if ok is None else "  [met]" if ok else "  [MISSED]"
        print("%-44s %16s   %s%s" % (what, measured, target, verdict))

    row("shmreg r.get", "%.0f ns" % sh)
    row("lmdb txn.get", "%.0f ns" % lm)
    row("redis GET (loopback)", "%.0f ns" % rd)
    row("dict lookup + bytes copy", "%.0f ns" % dc)
    row("empty loop (in every figure)", "%.0f ns" % med["loop"])
    row("lmdb / shmreg", "%.2fx" % (lm / sh), ">= 3x", lm / sh >= 3)
    shh, lmh = med[Shmreg.name + ", held"], med[Lmdb.name + ", held"]
    row("shmreg r.get, results held (no reuse)", "%.0f ns" % shh)
    row("lmdb txn.get, results held", "%.0f ns" % lmh)
    row("lmdb / shmreg, results held", "%.2fx" % (lmh / shh))
    row("redis / shmreg", "%.1fx" % (rd / sh))
    row("shmreg / (dict + copy)", "%.2fx" % (sh / dc), "<= 2x",
        sh / dc <= 2)
    net = med["loop"]
    row("lmdb / shmreg, loop excluded", "%.2fx" % ((lm - net) / (sh - net)))
    row("shmreg / (dict + copy), loop excluded",
        "%.2fx" % ((sh - net) / (dc - net)))
    print("# key: %.2f" % (lm / sh))


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: MIT
"""Description: the Python module shmreg - every call of Registry, Watch,
Writer and Client with its results and errors (exact exception types and
errno), GIL release while wait/watch block, fork safety, bad types and
sizes.  Run by ctest with /usr/bin/python3 and PYTHONPATH=<build>/python.
"""
import errno
import gc
import os
import signal
import sys
import threading
import time
import unittest

import shmreg
from shmreg_testlib import Daemon, deadline_wait

_n = 0


def while_blocked(call, action):
    """Run call() in this thread while another thread, once this one is
    inside call(), runs action() (which must make call() return).  The
    other thread first spins through many forced thread switches: a call
    that kept the GIL while blocking would stop it there for good, so
    action() running at all shows the GIL was released."""
    entering = threading.Event()
    done = []

    def other():
        entering.wait()
        for _ in range(20000):
            pass
        action()
        done.append(True)

    t = threading.Thread(target=other)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t.start()
    try:
        entering.set()
        return call()
    finally:
        sys.setswitchinterval(old)
        t.join()
        assert done, "the other thread did not finish"


def fresh_name():
    """A registry name of its own for each test (they share SHMREG_DIR)."""
    global _n
    _n += 1
    return "py%d-%d" % (os.getpid(), _n)


class WriterCase(unittest.TestCase):
    """A test with its own embedded writer and a reader on its registry."""

    def setUp(self):
        self.name = fresh_name()
        self.w = shmreg.Writer(self.name, truncate=True)
        self.r = shmreg.open(self.name)

    def tearDown(self):
        self.r.close()
        self.w.close()


class TestOpen(unittest.TestCase):
    def test_missing_is_file_not_found(self):
        with self.assertRaises(FileNotFoundError) as cm:
            shmreg.open("no-such-registry")
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertEqual(cm.exception.filename, "no-such-registry")

    def test_bad_names_are_value_errors(self):
        for bad in ("", "../etc", ".hidden", "a b", "x" * 300):
            with self.assertRaises(ValueError, msg=bad):
                shmreg.open(bad)
        with self.assertRaises(ValueError):
            shmreg.open("nul\0inside")
        with self.assertRaises(TypeError):
            shmreg.open(42)

    def test_not_a_registry_is_eproto(self):
        path = os.path.join(os.environ["SHMREG_DIR"], "junk")
        with open(path, "wb") as f:
            f.write(b"not a registry" * 1000)
        with self.assertRaises(OSError) as cm:
            shmreg.open(path)
        self.assertEqual(cm.exception.errno, errno.EPROTO)

    def test_unreadable_is_permission_error(self):
        if os.geteuid() == 0:
            self.skipTest("root reads any file")
        name = fresh_name()
        with shmreg.Writer(name, mode=0o200):
            with self.assertRaises(PermissionError) as cm:
                shmreg.open(name)
            self.assertEqual(cm.exception.errno, errno.EACCES)

    def test_pathlike_and_absolute_path(self):
        name = fresh_name()
        with shmreg.Writer(name) as w:
            w.put("k", b"v")
            path = os.path.join(os.environ["SHMREG_DIR"], "shmreg." + name)
            import pathlib
            with shmreg.open(pathlib.Path(path)) as r:
                self.assertEqual(r["k"], b"v")
                self.assertEqual(r.name, path)


class TestRead(WriterCase):
    def test_get_getitem_contains(self):
        rev = self.w.put(b"a", b"1")
        self.assertEqual(rev, 1)
        self.w.put("str-key", "text value")
        self.assertEqual(self.r.get(b"a"), b"1")
        self.assertEqual(self.r[b"a"], b"1")
        self.assertEqual(self.r["str-key"], b"text value")
        self.assertEqual(self.r[bytearray(b"str-key")], b"text value")
        self.assertEqual(self.r[memoryview(b"xa")[1:]], b"1")
        self.assertIsNone(self.r.get(b"missing"))
        self.assertEqual(self.r.get(b"missing", b"dflt"), b"dflt")
        self.assertEqual(self.r.get(b"missing", 7), 7)
        self.assertEqual(self.r.get(b"missing", default=8), 8)
        self.assertEqual(self.r.get(b"a", default=8), b"1")
        with self.assertRaises(TypeError):
            self.r.get(b"a", dflt=8)
        with self.assertRaises(TypeError):
            self.r.get(b"a", 1, default=8)
        with self.assertRaises(KeyError) as cm:
            self.r[b"missing"]
        self.assertEqual(cm.exception.args, (b"missing",))
        self.assertIn("a", self.r)
        self.assertNotIn("missing", self.r)
        self.assertEqual(type(self.r.get("a")), bytes)

    def test_key_lengths_on_the_read_path(self):
        # get, [] and `in` take a bytes key of 1..KEY_MAX bytes without a
        # call into the argument parser; every other key goes through it:
        # both must give the same answers and the same errors
        class B(bytes):
            pass
        longest = b"k" * shmreg.KEY_MAX
        self.w.put(longest, b"long")
        self.w.put(b"s", b"short")
        for key in (longest, B(longest), longest.decode()):
            self.assertEqual(self.r.get(key), b"long")
            self.assertEqual(self.r[key], b"long")
            self.assertIn(key, self.r)
        self.assertEqual(self.r.get(B(b"s")), b"short")
        for bad in (b"", B(b""), "", b"k" * (shmreg.KEY_MAX + 1),
                    B(b"k" * (shmreg.KEY_MAX + 1))):
            with self.assertRaises(ValueError, msg=repr(bad)[:20]):
                self.r.get(bad)
            with self.assertRaises(ValueError, msg=repr(bad)[:20]):
                self.r[bad]
            with self.assertRaises(ValueError, msg=repr(bad)[:20]):
                bad in self.r
        for bad in (None, 5, 1.5, [b"a"]):
            with self.assertRaises(TypeError, msg=repr(bad)):
                self.r.get(bad)
            with self.assertRaises(TypeError, msg=repr(bad)):
                self.r[bad]

    def test_results_reused_only_when_nobody_holds_them(self):
        # A get may rewrite and return the bytes of an earlier get that
        # only the Registry still holds (registry.c, the spares): what
        # anybody holds, in any way, must never change under them.
        vals = [bytes([65 + i]) * 64 for i in range(6)]
        for i, v in enumerate(vals):
            self.w.put(b"k%d" % i, v)
        self.w.put(b"short", b"xyz")
        held = [self.r.get(b"k%d" % i) for i in range(6)]
        view = memoryview(self.r.get(b"k0"))
        as_key = {self.r[b"k1"]: "one"}
        hashed = self.r.get(b"k2")
        h2 = hash(hashed)
        for _ in range(3):      # dropped results: reused, rewritten
            for i in range(6):
                self.assertEqual(self.r.get(b"k%d" % i), vals[i])
                self.assertEqual(self.r[b"k%d" % i], vals[i])
                v = self.r.get(b"k%d" % ((i + 3) % 6))   # rebound
                self.assertEqual(v, vals[(i + 3) % 6])
                self.assertEqual(self.r.get(b"short"), b"xyz")
        self.assertEqual(held, vals)
        self.assertEqual(view.tobytes(), vals[0])
        self.assertEqual(as_key, {vals[1]: "one"})
        self.assertEqual(hashed, vals[2])
        self.assertEqual(hash(hashed), h2)
        # a reused object does not keep the hash of its old contents
        for i in range(6):
            self.assertEqual(hash(self.r.get(b"k%d" % i)), hash(vals[i]))
        # empty and 1-byte values are CPython's shared objects: they stay
        self.w.put(b"e", b"")
        self.w.put(b"one", b"z")
        for _ in range(3):
            self.assertEqual(self.r.get(b"e"), b"")
            self.assertEqual(self.r.get(b"one"), b"z")
        # ... and kept their contents (a get never wrote into them)
        self.assertEqual(bytes([122]), b"z")
        self.assertEqual(b"".join([b""]), b"")

    def test_utf8_keys(self):
        self.w.put("clé/ü", b"x")
        self.assertEqual(self.r["clé/ü".encode()], b"x")
        self.assertEqual(list(self.r.list("clé")), [("clé/ü".encode(), b"x")])

    def test_value_sizes_around_the_stack_buffer(self):
        for n in (0, 1, 2047, 2048, 2049, 4096, 1 << 20):
            v = bytes((i * 7 + n) & 0xFF for i in range(n))
            self.w.put(b"v%d" % n, v)
            self.assertEqual(self.r[b"v%d" % n], v, n)
            self.assertEqual(self.r.info(b"v%d" % n).size, n)

    def test_largest_value(self):
        v = b"\xab" * shmreg.VALUE_MAX
        self.w.put("big", v)
        self.assertEqual(self.r["big"], v)

    def test_info(self):
        before = time.time_ns()
        r1 = self.w.put("k", b"v1")
        r2 = self.w.put("k", b"v22", ttl=60.0, owner_pid=os.getpid())
        info = self.r.info("k")
        self.assertIsInstance(info, shmreg.Info)
        self.assertEqual(info.mod_rev, r2)
        self.assertEqual(info.create_rev, r1)
        self.assertEqual(info.owner_pid, os.getpid())
        self.assertGreaterEqual(info.expires_at_ns, before + 60 * 10**9)
        self.assertLessEqual(info.expires_at_ns, time.time_ns() + 60 * 10**9)
        self.assertFalse(info.ephemeral)
        self.assertEqual(info.size, 3)
        self.assertEqual(tuple(info)[:2], (r2, r1))
        self.assertIsNone(self.r.info("absent"))

    def test_ttl_expiry(self):
        self.w.put("short", b"x", ttl=0.05)
        exp = self.r.info("short").expires_at_ns
        self.assertEqual(self.r["short"], b"x")
        # the reader checks the deadline itself: once the clock passed it,
        # the entry reads as absent
        deadline_wait(lambda: time.time_ns() > exp + 1000000, 5, "expiry")
        self.assertIsNone(self.r.get("short"))
        self.assertNotIn("short", self.r)

    def test_revision_and_stats(self):
        self.assertEqual(self.r.revision, 0)
        self.w.put("a", b"12345")
        self.w.put("b", b"")
        self.w.delete("b")
        self.assertEqual(self.r.revision, 3)
        self.assertEqual(self.w.revision, 3)
        st = self.r.stats()
        self.assertEqual(st["entries"], 1)
        self.assertEqual(st["revision"], 3)
        self.assertEqual(st["state"], "open")
        self.assertEqual(st["writer_pid"], os.getpid())
        self.assertEqual(st["bytes_used"], len("a") + 5)
        for k in ("segment_bytes", "index_capacity", "arena_bytes",
                  "generation", "ring_capacity"):
            self.assertGreater(st[k], 0, k)

    def test_list(self):
        for k in ("svc/a", "svc/b", "other"):
            self.w.put(k, k.upper())
        self.assertEqual(sorted(self.r.list(b"svc/")),
                         [(b"svc/a", b"SVC/A"), (b"svc/b", b"SVC/B")])
        self.assertEqual(len(list(self.r.list())), 3)
        self.assertEqual(list(self.r.list("nothing")), [])
        it = self.r.list()
        self.assertIs(iter(it), it)

    def test_find_children_attrs(self):
        self.w.put("node", b"")
        self.w.put("node/gpu1", b"g1", parent="node",
                   attrs=[("capability", "gpu"), ("capability", "infer"),
                          ("zone", "b")])
        self.w.put("node/cpu1", b"c1", parent=b"node",
                   attrs={"capability": "cpu", "zone": "b"})
        self.assertEqual(sorted(self.r.find({"zone": "b"})),
                         [(b"node/cpu1", b"c1"), (b"node/gpu1", b"g1")])
        self.assertEqual(list(self.r.find([("capability", "gpu"),
                                           ("capability", "infer")])),
                         [(b"node/gpu1", b"g1")])
        self.assertEqual(list(self.r.find({b"zone": b"nowhere"})), [])
        self.assertEqual(sorted(k for k, _ in self.r.children("node")),
                         [b"node/cpu1", b"node/gpu1"])
        self.assertEqual(list(self.r.children("node/gpu1")), [])
        self.assertEqual(list(self.r.children("absent")), [])
        self.assertEqual(self.r.attrs("node/gpu1"),
                         [("capability", "gpu"), ("capability", "infer"),
                          ("zone", "b")])
        self.assertEqual(self.r.attrs("node"), [])
        with self.assertRaises(KeyError):
            self.r.attrs("absent")

    def test_attr_limits(self):
        full = [("n%d" % i, "v" * shmreg.ATTR_VALUE_MAX)
                for i in range(shmreg.ATTRS_MAX)]
        full[0] = ("x" * shmreg.ATTR_NAME_MAX, "v")
        self.w.put("k", b"", attrs=full)
        self.assertEqual(self.r.attrs("k"), full)
        # attrs round-trip bytes that are not UTF-8
        self.w.set_attrs("k", {b"raw": b"\xff\xfe"})
        got = self.r.attrs("k")
        self.assertEqual(got, [("raw", "\udcff\udcfe")])
        self.assertEqual(list(self.r.find(got)), [(b"k", b"")])

    def test_context_manager_and_close(self):
        self.w.put("k", b"v")
        with shmreg.open(self.name) as r2:
            self.assertEqual(r2["k"], b"v")
            self.assertFalse(r2.closed)
        self.assertTrue(r2.closed)
        for call in (lambda: r2["k"], lambda: r2.get("k"),
                     lambda: "k" in r2, lambda: r2.info("k"),
                     lambda: r2.revision, lambda: r2.stats(),
                     lambda: r2.list(), lambda: r2.find({"a": "b"}),
                     lambda: r2.children("k"), lambda: r2.attrs("k"),
                     lambda: r2.wait("k"), lambda: r2.watch()):
            with self.assertRaises(ValueError):
                call()
        r2.close()   # twice is fine
        self.assertIn("closed", repr(r2))
        with self.assertRaises(ValueError):
            with r2:
                pass


class TestBadArguments(WriterCase):
    def test_key_types_and_sizes(self):
        for bad in (None, 1, 1.5, ["k"], object()):
            with self.assertRaises(TypeError):
                self.r.get(bad)
            with self.assertRaises(TypeError):
                self.w.put(bad, b"v")
        for call in (self.r.get, self.r.__getitem__, self.r.info,
                     self.r.attrs, self.r.children, self.w.delete):
            with self.assertRaises(ValueError):
                call(b"")
            with self.assertRaises(ValueError):
                call(b"k" * (shmreg.KEY_MAX + 1))
        with self.assertRaises(ValueError):
            b"" in self.r
        self.w.put(b"k" * shmreg.KEY_MAX, b"longest")
        self.assertEqual(self.r[b"k" * shmreg.KEY_MAX], b"longest")
        with self.assertRaises(ValueError):
            self.r.list(b"p" * (shmreg.KEY_MAX + 1))
        with self.assertRaises(UnicodeEncodeError):
            self.r.get("\udcff")   # a lone surrogate is not UTF-8

    def test_argument_counts(self):
        with self.assertRaises(TypeError):
            self.r.get()
        with self.assertRaises(TypeError):
            self.r.get("a", None, None)
        with self.assertRaises(TypeError):
            self.w.put("k")
        with self.assertRaises(TypeError):
            self.w.put("k", b"v", 5)   # ttl is keyword-only
        with self.assertRaises(TypeError):
            self.w.put("k", b"v", bogus=1)

    def test_value_types_and_sizes(self):
        for bad in (None, 5, {"a": 1}):
            with self.assertRaises(TypeError):
                self.w.put("k", bad)
        with self.assertRaises(ValueError):
            self.w.put("k", b"\0" * (shmreg.VALUE_MAX + 1))
        self.assertNotIn("k", self.r)

    def test_put_options(self):
        cases = [
            (TypeError, dict(ttl="1")),
            (ValueError, dict(ttl=-1)),
            (ValueError, dict(ttl=0)),
            (ValueError, dict(ttl=float("nan"))),
            (ValueError, dict(ttl=1e12)),
            (TypeError, dict(owner_pid="1")),
            (ValueError, dict(owner_pid=-5)),
            (ValueError, dict(owner_pid=0)),
            (TypeError, dict(expect_rev=1.0)),
            (ValueError, dict(expect_rev=-1)),
            (ValueError, dict(expect_rev=2**64)),
            (TypeError, dict(attrs=5)),
            (ValueError, dict(attrs=["abc"])),
            (ValueError, dict(attrs={"a=b": "c"})),
            (ValueError, dict(attrs={"": "c"})),
            (ValueError, dict(attrs={"a": "c\0d"})),
            (TypeError, dict(attrs={"a": 5})),
            (ValueError, dict(attrs={"n" * 65: "v"})),
            (ValueError, dict(attrs={"n": "v" * 257})),
            (ValueError, dict(attrs=[("n", "v")] * 17)),
            (TypeError, dict(parent=5)),
            (ValueError, dict(parent=b"")),
        ]
        for exc, kw in cases:
            with self.assertRaises(exc, msg=repr(kw)):
                self.w.put("k", b"v", **kw)
        self.assertEqual(self.r.revision, 0)   # nothing was written

    def test_timeouts(self):
        with self.assertRaises(TypeError):
            self.r.wait("k", timeout="1")
        with self.assertRaises(ValueError):
            self.r.wait("k", timeout=-0.5)
        with self.assertRaises(ValueError):
            self.r.wait("k", timeout=float("nan"))
        with self.r.watch() as wt:
            with self.assertRaises(ValueError):
                wt.next(-1)
            with self.assertRaises(TypeError):
                wt.next([])

    def test_find_arguments(self):
        with self.assertRaises(ValueError):
            self.r.find({})
        with self.assertRaises(TypeError):
            self.r.find(5)
        with self.assertRaises(ValueError):
            self.r.find([("a",)])
        with self.assertRaises(TypeError):
            self.r.watch(since="1")
        with self.assertRaises(ValueError):
            self.r.watch(since=-1)


class TestWriterErrors(WriterCase):
    def test_second_writer_is_ebusy(self):
        with self.assertRaises(OSError) as cm:
            shmreg.Writer(self.name)
        self.assertEqual(cm.exception.errno, errno.EBUSY)

    def test_bad_writer_name(self):
        with self.assertRaises(ValueError):
            shmreg.Writer("../x")

    def test_delete(self):
        r1 = self.w.put("k", b"v")
        self.assertEqual(self.w.delete("k"), r1 + 1)
        self.assertNotIn("k", self.r)
        with self.assertRaises(KeyError) as cm:
            self.w.delete("k")
        self.assertEqual(cm.exception.args, ("k",))

    def test_trees(self):
        self.w.put("root", b"")
        self.w.put("root/a", b"", parent="root")
        self.w.put("root/a/x", b"", parent="root/a")
        with self.assertRaises(OSError) as cm:
            self.w.delete("root")
        self.assertEqual(cm.exception.errno, errno.ENOTEMPTY)
        with self.assertRaises(OSError) as cm:
            self.w.put("root", b"", parent="root/a")
        self.assertEqual(cm.exception.errno, errno.ELOOP)
        with self.assertRaises(KeyError) as cm:
            self.w.put("orphan", b"", parent="nobody")
        self.assertEqual(cm.exception.args, ("nobody",))
        self.assertNotIn("orphan", self.r)
        self.assertEqual(self.w.delete("root", recursive=True), 3)
        self.assertEqual(list(self.r.list()), [])
        with self.assertRaises(KeyError):
            self.w.delete("root", recursive=True)

    def test_compare_and_set(self):
        with self.assertRaises(FileExistsError):
            self.w.put("k", b"x", expect_rev=5)   # absent: no rev matches
        r1 = self.w.put("k", b"v1", expect_rev=0)   # only if absent
        with self.assertRaises(FileExistsError) as cm:
            self.w.put("k", b"v2", expect_rev=0)
        self.assertEqual(cm.exception.errno, errno.EEXIST)
        with self.assertRaises(FileExistsError):
            self.w.put("k", b"v2", expect_rev=r1 + 1)
        r2 = self.w.put("k", b"v2", expect_rev=r1)
        self.assertEqual((self.r["k"], self.r.info("k").mod_rev), (b"v2", r2))

    def test_owner_pid(self):
        with self.assertRaises(ProcessLookupError) as cm:
            self.w.put("k", b"", owner_pid=2**22 + 12345)
        self.assertEqual(cm.exception.errno, errno.ESRCH)

    def test_set_attrs(self):
        self.w.put("k", b"keep", ttl=100)
        exp = self.r.info("k").expires_at_ns
        rev = self.w.set_attrs("k", {"a": "1"})
        self.assertEqual(self.r.attrs("k"), [("a", "1")])
        self.assertEqual(self.r["k"], b"keep")
        self.assertEqual(self.r.info("k").mod_rev, rev)
        self.assertEqual(self.r.info("k").expires_at_ns, exp)
        self.w.set_attrs("k", None)
        self.assertEqual(self.r.attrs("k"), [])
        with self.assertRaises(KeyError):
            self.w.set_attrs("absent", {"a": "1"})

    def test_ephemeral_needs_a_connection(self):
        with self.assertRaises(ValueError):
            self.w.put("k", b"", ephemeral=True)

    def test_closed_writer(self):
        self.w.close()
        self.assertTrue(self.w.closed)
        with self.assertRaises(ValueError):
            self.w.put("k", b"")
        with self.assertRaises(ValueError):
            self.w.revision
        self.assertEqual(self.r.stats()["state"], "closed")
        self.w.close()


class TestWait(WriterCase):
    def test_present_returns_at_once(self):
        self.w.put("k", b"v")
        self.assertEqual(self.r.wait("k", timeout=0), b"v")
        self.assertEqual(self.r.wait("k"), b"v")

    def test_timeout(self):
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError) as cm:
            self.r.wait("k", timeout=0.2)
        self.assertEqual(cm.exception.errno, errno.ETIMEDOUT)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        with self.assertRaises(TimeoutError):
            self.r.wait("k", timeout=0)

    def test_releases_the_gil(self):
        """A thread must run, and put the key, while wait() blocks: with
        the GIL held, the wait would run into its timeout instead."""
        def put_later():
            self.w.put("k", b"large" * 1000)   # past the stack buffer

        got = while_blocked(lambda: self.r.wait("k", timeout=30), put_later)
        self.assertEqual(got, b"large" * 1000)

    def test_writer_close_is_eshutdown(self):
        threading.Timer(0.05, self.w.close).start()
        with self.assertRaises(OSError) as cm:
            self.r.wait("never", timeout=30)
        self.assertEqual(cm.exception.errno, errno.ESHUTDOWN)

    def test_close_from_another_thread(self):
        r2 = shmreg.open(self.name)
        threading.Timer(0.05, r2.close).start()
        t0 = time.monotonic()
        with self.assertRaises(ValueError):
            r2.wait("never", timeout=30)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertTrue(r2.closed)


class TestWatch(WriterCase):
    def test_events(self):
        with self.r.watch() as wt:
            r1 = self.w.put("a", b"1")
            r2 = self.w.delete("a")
            ev = wt.next(5)
            self.assertIsInstance(ev, shmreg.Event)
            self.assertEqual(tuple(ev), (r1, "put", b"a"))
            self.assertEqual((ev.rev, ev.type, ev.key), (r1, "put", b"a"))
            self.assertEqual(tuple(next(wt)), (r2, "delete", b"a"))
            with self.assertRaises(TimeoutError) as cm:
                wt.next(0.05)
            self.assertEqual(cm.exception.errno, errno.ETIMEDOUT)
            with self.assertRaises(TimeoutError):
                wt.next(0)
        with self.assertRaises(ValueError):
            wt.next(0)
        wt.close()

    def test_prefix_and_since(self):
        r1 = self.w.put("x/1", b"")
        self.w.put("y/1", b"")
        r3 = self.w.put("x/2", b"")
        with self.r.watch("x/", since=0) as wt:
            self.assertEqual([tuple(wt.next(5)) for _ in range(2)],
                             [(r1, "put", b"x/1"), (r3, "put", b"x/2")])
        with self.r.watch(since=r1) as wt:
            self.assertEqual(wt.next(5).key, b"y/1")

    def test_fell_behind_is_erange(self):
        name = fresh_name()
        with shmreg.Writer(name, ring_events=1024) as w, \
                shmreg.open(name) as r:
            wt = r.watch(since=0)
            for i in range(1100):
                w.put("k", b"%d" % i)
            with self.assertRaises(OSError) as cm:
                wt.next(1)
            self.assertEqual(cm.exception.errno, errno.ERANGE)
            with self.assertRaises(OSError) as cm:
                r.watch(since=1)
            self.assertEqual(cm.exception.errno, errno.ERANGE)
            wt.close()

    def test_iteration_releases_the_gil(self):
        wt = self.r.watch()
        keys = []
        for i in range(3):
            ev = while_blocked(lambda: next(wt),
                               lambda: self.w.put("k%d" % i, b""))
            keys.append(ev.key)
        self.assertEqual(keys, [b"k0", b"k1", b"k2"])
        wt.close()

    def test_close_from_another_thread(self):
        wt = self.r.watch()
        threading.Timer(0.05, wt.close).start()
        with self.assertRaises(ValueError):
            wt.next(30)
        with self.assertRaises(ValueError):
            wt.next(0)

    def test_registry_outlives_close_while_watched(self):
        r2 = shmreg.open(self.name)
        wt = r2.watch()
        r2.close()          # the watch keeps the mapping until it closes
        with self.assertRaises(ValueError):
            wt.next(0)
        del wt, r2
        gc.collect()


class TestFork(WriterCase):
    def test_children_read_the_parents_handle(self):
        """Opened in the parent before fork (as a pre-fork master does),
        read in every child, including values put after the fork."""
        self.w.put("before", b"b")
        pids = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    ok = (self.r["before"] == b"b" and
                          self.r.wait("after", timeout=20) == b"a" and
                          self.r.info("after").size == 1)
                    code = 0 if ok else 1
                finally:
                    os._exit(code)
            pids.append(pid)
        self.w.put("after", b"a")
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)

    def test_child_is_not_the_writer(self):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                try:
                    self.w.put("k", b"")
                except OSError as e:
                    code = 0 if e.errno == errno.EBUSY else 2
                self.w.close()     # forgets; the parent still writes
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.w.put("k", b"still the writer")
        self.assertEqual(self.r["k"], b"still the writer")
        self.assertEqual(self.r.stats()["state"], "open")


class TestWriterDied(unittest.TestCase):
    def test_waiters_see_eownerdead(self):
        """A writer killed without closing: wait() and Watch.next() raise
        OSError(EOWNERDEAD), stats() says "dead"."""
        name = fresh_name()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                w = shmreg.Writer(name, truncate=True)
                w.put("k", b"v")
                os.write(wfd, b"x")
                time.sleep(60)          # until the parent kills it
            finally:
                os._exit(1)
        os.close(wfd)
        try:
            self.assertEqual(os.read(rfd, 1), b"x")
            r = shmreg.open(name)
            wt = r.watch()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            with self.assertRaises(OSError) as cm:
                r.wait("never", timeout=20)
            self.assertEqual(cm.exception.errno, errno.EOWNERDEAD)
            with self.assertRaises(OSError) as cm:
                wt.next(20)
            self.assertEqual(cm.exception.errno, errno.EOWNERDEAD)
            self.assertEqual(r.stats()["state"], "dead")
            self.assertEqual(r["k"], b"v")      # the contents stay
            wt.close()
            r.close()
        finally:
            os.close(rfd)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def as_nobody(fn):
    """Run fn() in a forked child as uid/gid 65534; its exit code (0 when
    fn returned True)."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = 0 if fn() else 1
        except BaseException as e:
            print("as_nobody: %r" % e, file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@unittest.skipUnless(os.geteuid() == 0, "needs root to become another uid")
class TestOtherUid(unittest.TestCase):
    def test_open_of_an_unreadable_registry(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="shmreg-py-uid-", dir="/tmp")
        os.chmod(d, 0o755)
        try:
            secret = os.path.join(d, "shmreg.secret")
            public = os.path.join(d, "shmreg.public")
            with shmreg.Writer(secret, mode=0o600), \
                    shmreg.Writer(public, mode=0o644) as wp:
                wp.put("k", b"v")

                def check():
                    # the directory is reachable: the public one opens
                    if shmreg.open(public)["k"] != b"v":
                        return False
                    try:
                        shmreg.open(secret)
                    except PermissionError as e:
                        return e.errno == errno.EACCES
                    return False
                self.assertEqual(as_nobody(check), 0)
        finally:
            import shutil
            shutil.rmtree(d, ignore_errors=True)

    def test_daemon_refuses_another_uid(self):
        name = fresh_name()
        d = Daemon(name)
        try:
            os.chmod(d.dir, 0o755)

            def check():
                # refused at its first request: the HELLO of connect()
                try:
                    shmreg.connect(d.socket, name).put("k", b"")
                except PermissionError as e:
                    return e.errno == errno.EACCES
                return False
            self.assertEqual(as_nobody(check), 0)
        finally:
            d.stop()
            d.cleanup()


class TestClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.name = fresh_name()
        cls.d = Daemon(cls.name)
        cls.r = shmreg.open(cls.name)

    @classmethod
    def tearDownClass(cls):
        cls.r.close()
        code = cls.d.stop()
        cls.d.cleanup()
        assert code == 0, "shmregd exit status %r" % code

    def setUp(self):
        self.c = shmreg.connect(self.d.socket, self.name)

    def tearDown(self):
        self.c.close()

    def test_connect_errors(self):
        with self.assertRaises(FileNotFoundError) as cm:
            shmreg.connect("/tmp/no-such-dir-shmreg/x.sock", self.name)
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        with self.assertRaises(FileNotFoundError):
            shmreg.connect(self.d.socket, "not-served")
        with self.assertRaises(ValueError):
            shmreg.connect(self.d.socket, "")
        with self.assertRaises(TypeError):
            shmreg.connect(5, self.name)

    def test_registry_from_the_environment(self):
        os.environ["SHMREG_REGISTRY"] = self.name
        os.environ["SHMREG_SOCKET"] = self.d.socket
        try:
            with shmreg.connect() as c:
                self.assertGreaterEqual(c.ping(), 0)
        finally:
            del os.environ["SHMREG_REGISTRY"], os.environ["SHMREG_SOCKET"]

    def test_put_get_delete(self):
        rev = self.c.put("c/k", b"v", attrs={"role": "db"}, ttl=30)
        # read-your-writes: visible as soon as put returned
        self.assertEqual(self.r["c/k"], b"v")
        self.assertEqual(self.r.info("c/k").mod_rev, rev)
        self.assertEqual(self.r.attrs("c/k"), [("role", "db")])
        self.assertEqual(self.c.ping(), rev)
        rev2 = self.c.set_attrs("c/k", {"role": "replica"})
        self.assertEqual(rev2, rev + 1)
        self.assertEqual(list(self.r.find({"role": "replica"})),
                         [(b"c/k", b"v")])
        self.assertEqual(self.c.delete("c/k"), rev2 + 1)
        self.assertNotIn("c/k", self.r)
        with self.assertRaises(KeyError) as cm:
            self.c.delete("c/k")
        self.assertEqual(cm.exception.args, ("c/k",))
        with self.assertRaises(KeyError):
            self.c.set_attrs("c/k", {})

    def test_tree_and_cas_errors(self):
        self.c.put("t", b"")
        self.c.put("t/1", b"", parent="t")
        with self.assertRaises(OSError) as cm:
            self.c.delete("t")
        self.assertEqual(cm.exception.errno, errno.ENOTEMPTY)
        with self.assertRaises(KeyError):
            self.c.put("t/2", b"", parent="nope")
        with self.assertRaises(FileExistsError):
            self.c.put("t", b"", expect_rev=0)
        with self.assertRaises(ProcessLookupError):
            self.c.put("t/3", b"", owner_pid=2**22 + 12345)
        self.assertEqual(self.c.delete("t", recursive=True), 2)

    def test_batch_all(self):
        rev0 = self.c.ping()
        with self.c.batch() as b:
            self.assertIsInstance(b, shmreg.Batch)
            self.assertIsNone(b.put("bt/p", b""))
            b.put("bt/p/1", b"one", parent="bt/p", attrs={"in": "batch"})
            b.put("bt/x", b"x", expect_rev=0)
            b.set_attrs("bt/x", {"s": "1"})
            b.delete("bt/x")
            self.assertEqual(len(b), 5)
            # nothing is sent before the block ends
            self.assertNotIn("bt/p", self.r)
        self.assertEqual(b.revision, rev0 + 5)
        self.assertIsNone(b.failed)
        self.assertEqual(self.r["bt/p/1"], b"one")
        self.assertEqual(self.r.attrs("bt/p/1"), [("in", "batch")])
        self.assertNotIn("bt/x", self.r)
        self.assertEqual(self.r.info("bt/p/1").mod_rev, rev0 + 2)
        with self.assertRaises(ValueError):
            b.put("k", b"")               # committed: closed
        b.abort()                         # allowed after commit
        with self.c.batch() as b:
            b.delete("bt/p", recursive=True)
        self.assertEqual(list(self.r.list("bt/")), [])
        with self.c.batch() as b:         # empty: the current revision
            pass
        self.assertEqual(b.revision, self.c.ping())

    def test_batch_none(self):
        self.c.put("bn/a", b"old")
        rev0 = self.c.ping()
        b = self.c.batch()
        b.put("bn/a", b"new")
        b.put("bn/c", b"", parent="bn/missing")
        b.delete("bn/a")
        with self.assertRaises(KeyError) as cm:
            b.commit()
        self.assertEqual(cm.exception.args, (b"bn/missing",))
        self.assertEqual(b.failed, 1)
        self.assertIsNone(b.revision)
        self.assertEqual(self.r["bn/a"], b"old")   # nothing applied
        self.assertEqual(self.c.ping(), rev0)
        with self.assertRaises(FileExistsError) as cm:
            with self.c.batch() as b:
                b.put("bn/b", b"")
                b.put("bn/a", b"", expect_rev=0)
        self.assertEqual(cm.exception.errno, errno.EEXIST)
        self.assertEqual(b.failed, 1)
        self.assertNotIn("bn/b", self.r)
        with self.assertRaises(KeyError) as cm:
            with self.c.batch() as b:
                b.delete("bn/nothing")
        self.assertEqual(cm.exception.args, (b"bn/nothing",))
        self.assertEqual(b.failed, 0)

    def test_batch_discarded(self):
        rev0 = self.c.ping()
        with self.assertRaises(ZeroDivisionError):
            with self.c.batch() as b:
                b.put("bd/a", b"")
                1 / 0
        self.assertNotIn("bd/a", self.r)
        self.assertEqual(self.c.ping(), rev0)
        with self.assertRaises(ValueError):
            b.commit()
        # bad arguments leave the batch as it was
        b = self.c.batch()
        b.put("bd/ok", b"1")
        with self.assertRaises(ValueError):
            b.put(b"", b"")
        with self.assertRaises(TypeError):
            b.put("bd/k", 5)
        with self.assertRaises(ValueError):
            b.set_attrs("bd/ok", {"a=b": "c"})
        self.assertEqual(len(b), 1)
        self.assertEqual(b.commit(), rev0 + 1)
        self.assertEqual(self.r["bd/ok"], b"1")
        # a batch whose connection closed is discarded, not sent
        c2 = shmreg.connect(self.d.socket, self.name)
        b = c2.batch()
        b.put("bd/late", b"")
        c2.close()
        with self.assertRaises(ValueError):
            b.commit()
        self.assertNotIn("bd/late", self.r)

    def test_bad_arguments_cost_no_round_trip(self):
        before = self.c.stats()["daemon"]["requests"]
        with self.assertRaises(ValueError):
            self.c.put(b"", b"")
        with self.assertRaises(ValueError):
            self.c.put("k", b"x" * (shmreg.VALUE_MAX + 1))
        with self.assertRaises(ValueError):
            self.c.put("k", b"", ttl=-1)
        with self.assertRaises(TypeError):
            self.c.put("k", 3)
        # the stats call itself is one request
        self.assertEqual(self.c.stats()["daemon"]["requests"], before + 1)

    def test_ephemeral_goes_with_the_connection(self):
        c2 = shmreg.connect(self.d.socket, self.name)
        c2.put("eph", b"mine", ephemeral=True)
        self.assertTrue(self.r.info("eph").ephemeral)
        with self.r.watch("eph") as wt:
            c2.close()
            ev = wt.next(10)
        self.assertEqual((ev.type, ev.key), ("delete", b"eph"))
        self.assertNotIn("eph", self.r)
        with self.assertRaises(ValueError):
            c2.put("k", b"")
        self.assertTrue(c2.closed)

    def test_stats(self):
        st = self.c.stats()
        self.assertEqual(st["state"], "open")
        self.assertEqual(st["writer_pid"], self.d.proc.pid)
        self.assertGreaterEqual(st["daemon"]["connections"], 1)
        self.assertEqual(st["revision"], self.r.revision)

    def test_forked_child_connects_anew(self):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.c.put("from-child", b"%d" % os.getpid())
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(self.r["from-child"], b"%d" % pid)
        # the parent's connection was left alone
        self.c.put("from-parent", b"ok")
        self.assertEqual(self.r["from-parent"], b"ok")

    def test_put_releases_the_gil(self):
        """With the daemon stopped, a put waits for its answer; only
        another thread, which must run meanwhile, lets the daemon go on
        (a put holding the GIL would hang the test until ctest's
        timeout)."""
        self.d.proc.send_signal(signal.SIGSTOP)
        try:
            rev = while_blocked(lambda: self.c.put("gil", b"g"),
                                lambda: self.d.proc.send_signal(
                                    signal.SIGCONT))
        finally:
            self.d.proc.send_signal(signal.SIGCONT)
        self.assertEqual(self.r.info("gil").mod_rev, rev)

    def test_two_threads_on_one_client(self):
        """The second thread is refused while the first waits."""
        errors = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                try:
                    self.c.ping()
                except RuntimeError:
                    errors.append(1)
                    return

        t = threading.Thread(target=hammer)
        t.start()
        try:
            deadline = time.monotonic() + 20
            while not errors and time.monotonic() < deadline:
                try:
                    self.c.ping()
                except RuntimeError:
                    errors.append(1)
        finally:
            stop.set()
            t.join()
        self.assertTrue(errors)
        self.assertGreaterEqual(self.c.ping(), 0)

    def test_daemon_gone(self):
        name = fresh_name()
        d = Daemon(name)
        try:
            c = shmreg.connect(d.socket, name)
            self.assertEqual(d.stop(), 0)
            with self.assertRaises(OSError) as cm:
                c.put("k", b"")
            self.assertIn(cm.exception.errno,
                          (errno.ECONNRESET, errno.EPIPE))
            c.close()
        finally:
            d.cleanup()


class TestModule(unittest.TestCase):
    def test_docstrings(self):
        self.assertIn("shared-memory registry", shmreg.__doc__)
        for obj in (shmreg.open, shmreg.connect, shmreg.Registry,
                    shmreg.Writer, shmreg.Client, shmreg.Batch, shmreg.Watch,
                    shmreg.Info, shmreg.Event):
            self.assertTrue(obj.__doc__ and len(obj.__doc__) > 30, obj)
        for cls, names in ((shmreg.Registry, "get info list find children "
                            "attrs wait watch stats close"),
                           (shmreg.Client, "put delete set_attrs ping "
                            "stats close batch"),
                           (shmreg.Batch, "put delete set_attrs commit "
                            "abort"),
                           (shmreg.Writer, "put delete set_attrs close"),
                           (shmreg.Watch, "next close")):
            for n in names.split():
                doc = getattr(cls, n).__doc__
                self.assertTrue(doc and len(doc) > 30, (cls, n))

    def test_constants(self):
        self.assertEqual(shmreg.KEY_MAX, 1024)
        self.assertEqual(shmreg.VALUE_MAX, 16 << 20)
        self.assertEqual(shmreg.ATTRS_MAX, 16)

    def test_built_for_this_interpreter(self):
        self.assertEqual(sys.executable, "/usr/bin/python3")
        self.assertTrue(shmreg.__file__.startswith(
            os.path.join(os.environ["SHMREG_BINARY_DIR"], "python")))


if __name__ == "__main__":
    unittest.main(verbosity=2)

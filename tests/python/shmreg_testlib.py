# SPDX-License-Identifier: MIT
"""shmreg_testlib - what the Python suites share: a scratch registry
directory, a real shmregd started and stopped by pid, deadlines.

Run through ctest: SHMREG_DIR is the test's own scratch directory,
SHMREGD the daemon just built, PYTHONPATH the build tree's python/.
"""
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time


def deadline_wait(cond, timeout=10.0, what="condition"):
    """Re-check cond() until it is true or timeout seconds passed (for
    conditions with nothing to block on, such as a process's exit)."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def die_with_parent():
    """In a child before exec: SIGKILL it when the test process dies, so
    a server never outlives a test that failed or was killed."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Daemon:
    """A shmregd serving `registry` on a private socket under /tmp (sun_path
    is short), ready when it wrote READY to --ready-fd: no polling."""

    def __init__(self, registry, *extra):
        self.registry = registry
        self.dir = tempfile.mkdtemp(prefix="shmregd-py-", dir="/tmp")
        self.socket = os.path.join(self.dir, "d.sock")
        exe = os.environ.get("SHMREGD")
        if not exe:
            raise RuntimeError("SHMREGD is not set (run through ctest)")
        rfd, wfd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [exe, "--registry", registry, "--socket", self.socket,
                 "--ready-fd", str(wfd), "--quiet", *extra],
                pass_fds=(wfd,), stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent)
        finally:
            os.close(wfd)
        with os.fdopen(rfd, "rb") as r:
            line = r.read(6)   # READY\n, or EOF when it exits first
        if line != b"READY\n":
            code = self.proc.wait(timeout=10)
            self.cleanup()
            if code == 69:
                raise unittest_skip("shmregd: io_uring unavailable here")
            raise RuntimeError("shmregd did not start (exit %r)" % code)

    def stop(self, sig=signal.SIGTERM):
        """Signal the daemon by pid and reap it; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def unittest_skip(msg):
    import unittest
    return unittest.SkipTest(msg)

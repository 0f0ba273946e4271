# SPDX-License-Identifier: MIT
"""Description: the README's Python example runs as shown - against a
shmregd serving "demo" that holds svc/db/primary, it prints the value the
comment says and its put lands (with its TTL).
"""
import contextlib
import io
import os
import re
import sys
import time

import shmreg
from shmreg_testlib import Daemon


def fail(msg):
    print("test_readme: FAIL: " + msg)
    sys.exit(1)


readme = open(os.path.join(os.environ["SHMREG_SOURCE_DIR"], "README.md")).read()
m = re.search(r"^## From Python\n\n```python\n(.*?)```", readme, re.S | re.M)
if not m:
    fail("no ```python block under '## From Python' in README.md")
code = m.group(1)
if len(code.strip().splitlines()) != 5:
    fail("the README's Python example is not five lines:\n" + code)

d = Daemon("demo")
try:
    with shmreg.connect(d.socket, "demo") as c:
        c.put("svc/db/primary", b"10.0.0.7:5432")
    os.environ["SHMREG_SOCKET"] = d.socket   # where connect() looks first
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    if out.getvalue() != "b'10.0.0.7:5432'\n":
        fail("printed %r, the comment says b'10.0.0.7:5432'" % out.getvalue())
    with shmreg.open("demo") as r:
        info = r.info("svc/db/primary")
        if r["svc/db/primary"] != b"10.0.0.8:5432":
            fail("the example's put did not land: %r" % r["svc/db/primary"])
        left = info.expires_at_ns - time.time_ns()
        if not 0 < left <= 30 * 10**9:
            fail("ttl=30 gave an expiry %d ns away" % left)
finally:
    d.stop()
    d.cleanup()
print("test_readme: ok")

# SPDX-License-Identifier: MIT
# gunicorn settings of test_gunicorn.py: examples/gunicorn's own, plus a
# hook that tells the test each worker's pid once the worker is ready (the
# test waits on that pipe instead of polling the port).
import os

exec(open(os.path.join(os.environ["SHMREG_SOURCE_DIR"], "examples",
                       "gunicorn", "gunicorn.conf.py")).read())
bind = "fd://%s" % os.environ["SHMREG_TEST_LISTEN_FD"]


def post_worker_init(worker):
    os.write(int(os.environ["SHMREG_TEST_READY_FD"]),
             b"%d\n" % os.getpid())

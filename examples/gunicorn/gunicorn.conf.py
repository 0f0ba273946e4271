# SPDX-License-Identifier: MIT
# gunicorn settings for app.py: map the registry in the master (preload),
# then fork the workers, which all read through that one mapping.
preload_app = True
workers = 2
bind = "127.0.0.1:8000"
# /wait requests hold a sync worker for up to SHMREG_EXAMPLE_WAIT seconds
timeout = 30

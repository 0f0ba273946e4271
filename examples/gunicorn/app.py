# SPDX-License-Identifier: MIT
"""A WSGI app that serves a shmreg registry from every gunicorn worker.

The registry is mapped once, at import: with `preload_app = True` (or
`gunicorn --preload`) that is in the master, before it forks, and every
worker reads through the one inherited mapping - no connection, lock or
message per worker, and values written after the fork show at once.

    SHMREG_EXAMPLE_REGISTRY=services gunicorn -c gunicorn.conf.py app:app
    curl localhost:8000/get/db/primary     -> {"pid":..., "key":..., "value":...}
    curl localhost:8000/wait/db/primary    -> {"pid":...}\\n then, once a
                                              writer put the key, its value
    curl localhost:8000/                   -> {"pid":..., "revision":...,
                                               "mapped_in": master's pid}

Responses are JSON lines carrying the pid of the worker that served them.
/wait/KEY streams its first line at once (so a client knows which worker
holds the request) and its second when the key exists; ?also=K1,K2 adds
those keys' values, read after the wait, to the second line.  Values are
shown as UTF-8 text (undecodable bytes replaced).
"""
import json
import os
from urllib.parse import parse_qs

import shmreg

REGISTRY = shmreg.open(os.environ.get("SHMREG_EXAMPLE_REGISTRY", "example"))
MAPPED_IN = os.getpid()   # the master's pid, with preload
WAIT_TIMEOUT = float(os.environ.get("SHMREG_EXAMPLE_WAIT", "20"))


def text(value):
    return None if value is None else value.decode("utf-8", "replace")


def line(obj):
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


def reply(start_response, status, obj):
    body = line(dict(obj, pid=os.getpid()))
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def wait_stream(key, also):
    """The /wait body: one line now, one when the key is there."""
    yield line({"pid": os.getpid()})
    try:
        value = REGISTRY.wait(key, timeout=WAIT_TIMEOUT)
    except TimeoutError:
        yield line({"pid": os.getpid(), "key": key, "error": "timeout"})
        return
    out = {"pid": os.getpid(), "key": key, "value": text(value)}
    out["also"] = {k: text(REGISTRY.get(k)) for k in also}
    yield line(out)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path.startswith("/get/") and len(path) > len("/get/"):
        key = path[len("/get/"):]
        value = REGISTRY.get(key)
        status = "200 OK" if value is not None else "404 Not Found"
        return reply(start_response, status,
                     {"key": key, "value": text(value)})
    if path.startswith("/wait/") and len(path) > len("/wait/"):
        also = [k for v in query.get("also", []) for k in v.split(",") if k]
        start_response("200 OK", [("Content-Type", "application/json")])
        return wait_stream(path[len("/wait/"):], also)
    if path == "/":
        return reply(start_response, "200 OK",
                     {"revision": REGISTRY.revision,
                      "mapped_in": MAPPED_IN})
    return reply(start_response, "404 Not Found", {"error": "no such path"})

/* SPDX-License-Identifier: MIT */
/*
 * module.h - what the C files of the Python module `shmreg` share: the
 * object layouts, the argument converters and the error mapping.
 *
 * Every file holds one job: module.c (the module and its functions),
 * registry.c (shmreg.Registry, the reader), watch.c (shmreg.Watch),
 * records.c (shmreg.Info, shmreg.Event, the stats dict),
 * client.c (shmreg.Client, the daemon connection), batch.c
 * (shmreg.Batch, all-or-nothing batches on a Client), writer.c
 * (shmreg.Writer, the embedded writer), change.c (the put/delete/set_attrs
 * calls both writers share), args.c (keys, values, timeouts, attributes),
 * block.c (blocking without holding the GIL), errors.c (errno to
 * exception).
 */
#ifndef SHMREG_PY_MODULE_H
#define SHMREG_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmreg.h"
#include "shmreg_writer.h"

/* ---- shmreg.Registry (registry.c) ---- */

/*
 * A mapped registry.  Calls that block (wait, Watch.next) release the GIL,
 * so another thread may call close() meanwhile: @busy counts those calls
 * and @watches the open Watch objects on the handle, and the handle is
 * only unmapped when both are 0 (the last of them unmaps it).  All three
 * counters are changed with the GIL held, which orders them.
 */
#define PYREG_SPARES 2   /* get results kept for reuse (registry.c) */

typedef struct {
	PyObject_HEAD
	shmreg_t *r;      /* NULL once unmapped */
	PyObject *name;   /* str, as given to open() */
	int busy;         /* calls blocking with the GIL released */
	int watches;      /* open shmreg.Watch objects on r */
	bool closed;      /* close() was called: refuse new calls */
	unsigned spare_next;   /* the spare the next new result replaces */
	PyObject *spare[PYREG_SPARES];   /* recent results, reused */
} pyreg_t;

extern PyTypeObject pyreg_type;
/* open(name): a new Registry or NULL with an exception set. */
PyObject *pyreg_open(PyObject *name);
/* Refuse a call on a closed registry: 0, or -1 with ValueError set. */
int pyreg_check_open(pyreg_t *self);
/* The end of a blocking call or a watch: unmap when close() asked for it
 * and nothing uses the handle any more. */
void pyreg_release(pyreg_t *self);

/* ---- shmreg.Watch (watch.c) ---- */

extern PyTypeObject pywatch_type;
PyObject *pywatch_new(pyreg_t *reg, PyObject *args, PyObject *kw);

/* ---- the struct sequences shmreg.Info and shmreg.Event (records.c) ---- */

extern PyTypeObject pyinfo_type;
extern PyTypeObject pyevent_type;
PyObject *pyinfo_from(const shmreg_info_t *info);
PyObject *pyevent_from(const shmreg_event_t *ev);
/* Ready both types; 0 or -1. */
int pyrecords_init(void);
/* A dict of a shmreg_stats_t; NULL with an exception set. */
PyObject *pystats_dict(const shmreg_stats_t *st);

/* ---- shmreg.Client (client.c) and shmreg.Writer (writer.c) ---- */

extern PyTypeObject pyclient_type;
extern PyTypeObject pywriter_type;
PyObject *pyclient_connect(PyObject *mod, PyObject *args, PyObject *kw);

/*
 * A connection.  A shmreg_client_t is used by one thread at a time: @busy
 * (set and cleared with the GIL held) refuses a second thread while the
 * first waits for the daemon without the GIL.
 */
typedef struct {
	PyObject_HEAD
	shmreg_client_t *c;  /* NULL once closed */
	unsigned gen;        /* pyfork_generation when it connected */
	PyObject *socket;    /* bytes (fs path) or None */
	PyObject *registry;  /* bytes */
	bool busy;
} pyclient_t;

/* May @self send now?  0, or -1 with an exception; connects anew in a
 * forked child. */
int pyclient_ready(PyObject *self);

/* Evaluate @call (a round trip on (self)->c) with the GIL released and
 * @busy set, after pyclient_ready(); its int64_t result. */
#define PYCLIENT_ROUND_TRIP(self, call) ({              \
	int64_t _r;                                     \
	(self)->busy = true;                            \
	Py_BEGIN_ALLOW_THREADS                          \
	_r = (call);                                    \
	Py_END_ALLOW_THREADS                            \
	(self)->busy = false;                           \
	_r; })

/* ---- shmreg.Batch (batch.c) ---- */

extern PyTypeObject pybatch_type;
/* Client.batch(): a new Batch on @client. */
PyObject *pybatch_new(pyclient_t *client);

/*
 * The writes both writers offer (change.c).  Each backend call returns
 * what the C API does: a revision (or a count) >= 0 or -errno.  A backend
 * that may block (the client's socket) releases the GIL inside its calls.
 */
struct pychange_ops {
	int64_t (*put)(PyObject *self, const void *k, size_t kl,
		       const void *v, size_t vl, const shmreg_put_opts_t *o);
	int64_t (*del)(PyObject *self, const void *k, size_t kl);
	int64_t (*del_tree)(PyObject *self, const void *k, size_t kl);
	int64_t (*set_attrs)(PyObject *self, const void *k, size_t kl,
			     const shmreg_attr_t *a, uint32_t n);
	/* 0 when the object may write now, else -1 with an exception set */
	int (*ready)(PyObject *self);
};

PyObject *pychange_put(PyObject *self, const struct pychange_ops *ops,
		       PyObject *args, PyObject *kw);
PyObject *pychange_delete(PyObject *self, const struct pychange_ops *ops,
			  PyObject *args, PyObject *kw);
PyObject *pychange_set_attrs(PyObject *self, const struct pychange_ops *ops,
			     PyObject *args, PyObject *kw);

/* The docstrings of the shared calls, one copy for both types. */
extern const char pychange_put_doc[];
extern const char pychange_delete_doc[];
extern const char pychange_set_attrs_doc[];

/* ---- arguments (args.c) ---- */

/* Bytes viewed for the length of one call: a key, a value, a name. */
typedef struct {
	const char *p;
	Py_ssize_t len;
	Py_buffer view;   /* held when the object exports a buffer */
	bool has_view;
} pybytes_t;

/* A key: bytes (or any buffer) or str (UTF-8), 1..SHMREG_KEY_MAX bytes.
 * TypeError / ValueError otherwise.  Returns 0 or -1. */
int pyarg_key(PyObject *o, pybytes_t *out);

/* pyarg_key for the read path (get, [], in): a bytes key of a valid
 * length, the common case, is taken here without a call into args.c;
 * every other object, and every error, goes through pyarg_key. */
static inline int pyarg_key_fast(PyObject *o, pybytes_t *out)
{
	if (PyBytes_CheckExact(o) && PyBytes_GET_SIZE(o) >= 1 &&
	    PyBytes_GET_SIZE(o) <= SHMREG_KEY_MAX) {
		out->p = PyBytes_AS_STRING(o);
		out->len = PyBytes_GET_SIZE(o);
		out->has_view = false;
		return 0;
	}
	return pyarg_key(o, out);
}
/* A value: bytes-like or str (UTF-8), 0..SHMREG_VALUE_MAX bytes. */
int pyarg_value(PyObject *o, pybytes_t *out);
/* A prefix: as a key, but may be empty (all keys). */
int pyarg_prefix(PyObject *o, pybytes_t *out);
void pybytes_buffer_release(pybytes_t *b);

/* Inline: a bytes or str argument holds no buffer, and this runs on every
 * get. */
static inline void pybytes_release(pybytes_t *b)
{
	if (b->has_view)
		pybytes_buffer_release(b);
}

/* Timeout in seconds (int or float >= 0) or None (forever) into ns
 * (< 0 = forever).  Returns 0 or -1. */
int pyarg_timeout(PyObject *o, int64_t *ns);

/* Attributes: a mapping {name: value} or an iterable of (name, value)
 * pairs, names and values str or bytes without NUL, names without '='.
 * The C strings live in one block owned by @a until pyattrs_release(). */
typedef struct {
	shmreg_attr_t v[SHMREG_ATTRS_MAX];
	uint32_t n;
	char *mem;
} pyattrs_t;
int pyarg_attrs(PyObject *o, pyattrs_t *a, const char *what);
void pyattrs_release(pyattrs_t *a);

/* "name\0value\0" pairs (shmreg_get_attrs) into a list of (str, str). */
PyObject *pyattrs_to_list(const char *buf, size_t len);

/* ---- blocking without the GIL (block.c) ---- */

/* One slice of a blocking call, run without the GIL: returns what the C
 * call returned (-ETIMEDOUT when the slice ran out). */
typedef int64_t (*pyblock_fn)(void *arg, int64_t slice_ns);
/*
 * Run @fn in slices until it returns anything but -ETIMEDOUT or
 * @timeout_ns (< 0 forever) is spent, with the GIL released during each
 * slice; between slices, signal handlers run (Ctrl-C works) and
 * @stopped(@arg) (true once close() was called) is checked.  Returns
 * @fn's result, -ETIMEDOUT, or PYBLOCK_EXC with an exception set.
 */
#define PYBLOCK_EXC INT64_MIN
int64_t pyblock_run(pyblock_fn fn, void *arg, int64_t timeout_ns,
		    bool (*stopped)(void *arg), const char *what);

/* ---- fork (module.c) ---- */

/*
 * Bumped in the child by a pthread_atfork handler at every fork(): an
 * object that remembers the value it was made under knows, with one load
 * and no getpid() system call per call, whether it now runs in a forked
 * child.  Read and written with the GIL held (the handler runs in the
 * child before any other thread exists there).
 */
extern unsigned pyfork_generation;

/* ---- errors (errors.c) ---- */

/* Set the exception for C API error @neg (< 0) of @what; returns NULL. */
PyObject *pyerr_errno(int64_t neg, const char *what);
/* The same for an absent key: KeyError(key) for -ENOENT. */
PyObject *pyerr_key(int64_t neg, const char *what, PyObject *key);
/* ValueError("operation on a closed <what>"). */
PyObject *pyerr_closed(const char *what);

#endif /* SHMREG_PY_MODULE_H */

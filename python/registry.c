/* SPDX-License-Identifier: MIT */
/* registry.c - shmreg.Registry: a registry mapped for reading. */
#include <errno.h>
#include <string.h>

#include "module.h"

/*
 * Values up to this size are copied through the stack: one shmreg_get,
 * then PyBytes_FromStringAndSize, so a get allocates nothing but its
 * result.  A larger value takes a second get straight into a bytes object
 * of the size the first one reported.
 */
#define GET_STACK 2048
/* A value that changes size between each of its gets this often in a row
 * is reported as BlockingIOError (-EAGAIN: retry). */
#define GET_TRIES 16

/* Most attribute bytes an entry can hold: the buffer of attrs(). */
#define ATTRS_BUF (SHMREG_ATTRS_MAX * \
		   (SHMREG_ATTR_NAME_MAX + SHMREG_ATTR_VALUE_MAX + 2))

static void drop_spares(pyreg_t *self);

int pyreg_check_open(pyreg_t *self)
{
	if (!self->closed)
		return 0;
	pyerr_closed("registry");
	return -1;
}

void pyreg_release(pyreg_t *self)
{
	if (self->closed && !self->busy && !self->watches && self->r) {
		shmreg_close(self->r);
		self->r = NULL;
	}
}

PyObject *pyreg_open(PyObject *name)
{
	PyObject *fs = NULL;
	pyreg_t *self;
	int ret;

	if (!PyUnicode_FSConverter(name, &fs))
		return NULL;
	self = PyObject_New(pyreg_t, &pyreg_type);
	if (!self) {
		Py_DECREF(fs);
		return NULL;
	}
	self->r = NULL;
	self->busy = self->watches = 0;
	memset(self->spare, 0, sizeof(self->spare));
	self->spare_next = 0;
	self->closed = true;   /* until the open succeeded */
	self->name = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(fs));
	ret = self->name ? shmreg_open(PyBytes_AS_STRING(fs), 0, &self->r) : 0;
	Py_DECREF(fs);
	if (!self->name) {
		Py_DECREF(self);
		return NULL;
	}
	if (ret < 0) {
		if (ret == -EINVAL)
			PyErr_Format(PyExc_ValueError, "bad registry name %R "
				     "(1..%u bytes of [A-Za-z0-9._-], or an "
				     "absolute path)", self->name,
				     SHMREG_NAME_MAX);
		else {
			errno = -ret;
			PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError,
							     self->name);
		}
		Py_DECREF(self);
		return NULL;
	}
	self->closed = false;
	return (PyObject *)self;
}

static void reg_dealloc(pyreg_t *self)
{
	/* busy callers and watches hold references: none is left */
	drop_spares(self);
	shmreg_close(self->r);
	Py_XDECREF(self->name);
	PyObject_Free(self);
}

/* ---- get ---- */

/* The value of a key whose first get reported @n bytes over GET_STACK. */
static PyObject *get_large(pyreg_t *self, const pybytes_t *k, ssize_t n,
			   bool *absent)
{
	for (int i = 0; i < GET_TRIES; i++) {
		PyObject *o = PyBytes_FromStringAndSize(NULL, n);
		ssize_t m;

		if (!o)
			return NULL;
		m = shmreg_get(self->r, k->p, (size_t)k->len,
			       PyBytes_AS_STRING(o), (size_t)n, NULL);
		if (m >= 0 && m <= n) {
			if (m < n && _PyBytes_Resize(&o, m) < 0)
				return NULL;
			return o;
		}
		Py_DECREF(o);
		if (m < 0) {
			if (m == -ENOENT)
				*absent = true;
			return m == -ENOENT ? NULL : pyerr_errno(m, "get");
		}
		n = m;  /* it grew meanwhile: again at its new size */
	}
	return pyerr_errno(-EAGAIN, "get");
}

/*
 * The result objects of recent gets, reused (the spares).  A get that
 * would return a value of the same size as a spare that nobody but the
 * Registry holds any more (its reference count is 1: the caller dropped
 * the result, or rebound the one variable that held it) rewrites that
 * spare and returns it, instead of allocating a new bytes that the
 * caller's drop of the old one would have freed: a value nobody can see
 * is not changed under anybody's eyes.  Two spares, so that both `get(k)`
 * (the result dropped at once) and `v = get(k)` in a loop (the previous
 * value freed only when v is rebound, after the next get) find one.  A
 * free-threaded build has no such count to trust: there every get
 * allocates.
 */

/* A rewritten bytes must not keep the hash of its old contents. */
static inline void bytes_forget_hash(PyObject *o)
{
	_Py_COMP_DIAG_PUSH
	_Py_COMP_DIAG_IGNORE_DEPR_DECLS
	((PyBytesObject *)o)->ob_shash = -1;
	_Py_COMP_DIAG_POP
}

static void drop_spares(pyreg_t *self)
{
	for (int i = 0; i < PYREG_SPARES; i++)
		Py_CLEAR(self->spare[i]);
}

/* @n bytes of @buf (n <= GET_STACK) as the bytes a get returns. */
static inline PyObject *value_bytes(pyreg_t *self, const char *buf,
				    ssize_t n)
{
	PyObject *o;

#ifndef Py_GIL_DISABLED
	for (int i = 0; i < PYREG_SPARES; i++) {
		o = self->spare[i];
		if (o && Py_REFCNT(o) == 1 && Py_SIZE(o) == n) {
			memcpy(PyBytes_AS_STRING(o), buf, (size_t)n);
			bytes_forget_hash(o);
			return Py_NewRef(o);
		}
	}
#endif
	o = PyBytes_FromStringAndSize(buf, n);
#ifndef Py_GIL_DISABLED
	/* 0 and 1 bytes come from CPython's shared singletons: never spares */
	if (o && n > 1) {
		unsigned i = self->spare_next;

		Py_XSETREF(self->spare[i], Py_NewRef(o));
		self->spare_next = (i + 1) % PYREG_SPARES;
	}
#endif
	return o;
}

/* The value of @k as bytes; NULL with *@absent set when there is none,
 * NULL with an exception on an error. */
static inline __attribute__((always_inline)) PyObject *
lookup(pyreg_t *self, const pybytes_t *k, bool *absent)
{
	char buf[GET_STACK];
	ssize_t n = shmreg_get(self->r, k->p, (size_t)k->len, buf,
			       sizeof(buf), NULL);

	if (n >= 0 && n <= (ssize_t)sizeof(buf))
		return value_bytes(self, buf, n);
	if (n == -ENOENT) {
		*absent = true;
		return NULL;
	}
	if (n < 0)
		return pyerr_errno(n, "get");
	return get_large(self, k, n, absent);
}

PyDoc_STRVAR(get_doc,
"get(key, default=None) -> bytes\n"
"\n"
"The value of key (bytes, or str encoded as UTF-8), or default when the\n"
"key is absent (or expired).  Lock-free: no system call, no lock.\n"
"Raises BlockingIOError (EAGAIN) when the writer kept changing the entry\n"
"through the whole retry budget, OSError(EOWNERDEAD) when it died in the\n"
"middle of changing it.");

/* get's arguments besides the key: 1 or 2 positional, or default= as
 * a keyword.  Out of reg_get's way: a get(key) runs none of these checks. */
static __attribute__((noinline, cold)) int
get_default(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
	    PyObject **dflt)
{
	Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

	if (nargs < 1 || nargs + nkw > 2) {
		PyErr_Format(PyExc_TypeError, "get() takes 1 or 2 arguments "
			     "(%zd given)", nargs + nkw);
		return -1;
	}
	if (nkw) {
		/* the one keyword: default (args[nargs] is its value) */
		if (PyUnicode_CompareWithASCIIString(
			    PyTuple_GET_ITEM(kwnames, 0), "default") != 0) {
			PyErr_Format(PyExc_TypeError, "get() got an unexpected "
				     "keyword argument %R",
				     PyTuple_GET_ITEM(kwnames, 0));
			return -1;
		}
		*dflt = args[nargs];
	} else if (nargs == 2) {
		*dflt = args[1];
	}
	return 0;
}

static PyObject *reg_get(pyreg_t *self, PyObject *const *args,
			 Py_ssize_t nargs, PyObject *kwnames)
{
	PyObject *v, *dflt = Py_None;
	pybytes_t k;
	bool absent = false;

	if ((kwnames || nargs != 1) &&
	    get_default(args, nargs, kwnames, &dflt) < 0)
		return NULL;
	if (pyreg_check_open(self) < 0 || pyarg_key_fast(args[0], &k) < 0)
		return NULL;
	v = lookup(self, &k, &absent);
	pybytes_release(&k);
	if (absent)
		return Py_NewRef(dflt);
	return v;
}

static PyObject *reg_subscript(pyreg_t *self, PyObject *key)
{
	PyObject *v;
	pybytes_t k;
	bool absent = false;

	if (pyreg_check_open(self) < 0 || pyarg_key_fast(key, &k) < 0)
		return NULL;
	v = lookup(self, &k, &absent);
	pybytes_release(&k);
	if (absent)
		PyErr_SetObject(PyExc_KeyError, key);
	return v;
}

static int reg_contains(pyreg_t *self, PyObject *key)
{
	pybytes_t k;
	ssize_t n;

	if (pyreg_check_open(self) < 0 || pyarg_key_fast(key, &k) < 0)
		return -1;
	n = shmreg_get(self->r, k.p, (size_t)k.len, NULL, 0, NULL);
	pybytes_release(&k);
	if (n >= 0 || n == -ENOENT)
		return n >= 0;
	pyerr_errno(n, "in");
	return -1;
}

PyDoc_STRVAR(info_doc,
"info(key) -> shmreg.Info or None\n"
"\n"
"What the registry holds about key besides its value: an Info with\n"
"mod_rev, create_rev, owner_pid, expires_at_ns, ephemeral and size, or\n"
"None when the key is absent.");

static PyObject *reg_info(pyreg_t *self, PyObject *key)
{
	shmreg_info_t info;
	pybytes_t k;
	ssize_t n;

	if (pyreg_check_open(self) < 0 || pyarg_key(key, &k) < 0)
		return NULL;
	n = shmreg_get(self->r, k.p, (size_t)k.len, NULL, 0, &info);
	pybytes_release(&k);
	if (n == -ENOENT)
		Py_RETURN_NONE;
	if (n < 0)
		return pyerr_errno(n, "info");
	return pyinfo_from(&info);
}

/* ---- walks: list, find, children ---- */

/* shmreg_list_fn's abort code when Python raised (the exception is set) */
#define WALK_EXC (-ECANCELED)

static int walk_add(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	/* an empty value may come as NULL: never hand NULL to Python */
	PyObject *t = Py_BuildValue("(NN)",
		PyBytes_FromStringAndSize(key, (Py_ssize_t)klen),
		PyBytes_FromStringAndSize(vlen ? val : "", (Py_ssize_t)vlen));
	int ret = t ? PyList_Append(arg, t) : -1;

	(void)info;
	Py_XDECREF(t);
	return ret < 0 ? WALK_EXC : 0;
}

/* An iterator over @list after a walk returned @n; steals @list. */
static PyObject *walk_result(PyObject *list, ssize_t n, const char *what)
{
	PyObject *it;

	if (n < 0) {
		Py_DECREF(list);
		return n == WALK_EXC ? NULL : pyerr_errno(n, what);
	}
	it = PyObject_GetIter(list);
	Py_DECREF(list);
	return it;
}

PyDoc_STRVAR(list_doc,
"list(prefix=b\"\") -> iterator of (key, value)\n"
"\n"
"Every entry whose key starts with prefix (all of them for b\"\"), as\n"
"(key, value) pairs of bytes.  Not a snapshot: an entry changed during\n"
"the walk is reported at most once, with its old or its new value.");

static PyObject *reg_list(pyreg_t *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "prefix", NULL };
	PyObject *prefix = NULL, *list;
	pybytes_t p = { .p = "", .len = 0 };
	ssize_t n;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:list", kwlist, &prefix))
		return NULL;
	if (pyreg_check_open(self) < 0 ||
	    (prefix && pyarg_prefix(prefix, &p) < 0))
		return NULL;
	list = PyList_New(0);
	if (!list) {
		pybytes_release(&p);
		return NULL;
	}
	n = shmreg_list(self->r, p.p, (size_t)p.len, walk_add, list);
	pybytes_release(&p);
	return walk_result(list, n, "list");
}

PyDoc_STRVAR(find_doc,
"find(attrs) -> iterator of (key, value)\n"
"\n"
"Every entry that carries all the name=value pairs of attrs (a dict, or\n"
"an iterable of (name, value) pairs when a name repeats), each once.\n"
"The cost grows with the entries carrying the rarest pair, not with the\n"
"registry.  Raises ValueError for no pairs or a bad name or value.");

static PyObject *reg_find(pyreg_t *self, PyObject *match)
{
	PyObject *list;
	pyattrs_t a;
	ssize_t n;

	if (pyreg_check_open(self) < 0 || pyarg_attrs(match, &a, "find") < 0)
		return NULL;
	if (a.n == 0) {
		pyattrs_release(&a);
		return PyErr_Format(PyExc_ValueError,
				    "find needs at least one (name, value)");
	}
	list = PyList_New(0);
	n = list ? shmreg_find(self->r, a.v, a.n, walk_add, list) : 0;
	pyattrs_release(&a);
	return list ? walk_result(list, n, "find") : NULL;
}

PyDoc_STRVAR(children_doc,
"children(key) -> iterator of (key, value)\n"
"\n"
"The direct children of key (the entries put with parent=key), each\n"
"once.  A key without children, or an absent one, has none.");

static PyObject *reg_children(pyreg_t *self, PyObject *key)
{
	PyObject *list;
	pybytes_t k;
	ssize_t n;

	if (pyreg_check_open(self) < 0 || pyarg_key(key, &k) < 0)
		return NULL;
	list = PyList_New(0);
	n = list ? shmreg_children(self->r, k.p, (size_t)k.len, walk_add,
				   list) : 0;
	pybytes_release(&k);
	return list ? walk_result(list, n, "children") : NULL;
}

PyDoc_STRVAR(attrs_doc,
"attrs(key) -> list of (name, value)\n"
"\n"
"The attributes of key in the order they were put, as (str, str) pairs\n"
"(UTF-8; other bytes as surrogate escapes).  Raises KeyError when the\n"
"key is absent.");

static PyObject *reg_attrs(pyreg_t *self, PyObject *key)
{
	char buf[ATTRS_BUF];
	pybytes_t k;
	ssize_t n;

	if (pyreg_check_open(self) < 0 || pyarg_key(key, &k) < 0)
		return NULL;
	n = shmreg_get_attrs(self->r, k.p, (size_t)k.len, buf, sizeof(buf));
	pybytes_release(&k);
	if (n < 0)
		return pyerr_key(n, "attrs", key);
	/* never larger than the most an entry can hold */
	if (n > (ssize_t)sizeof(buf))
		return pyerr_errno(-EPROTO, "attrs");
	return pyattrs_to_list(buf, (size_t)n);
}

/* ---- wait ---- */

struct wait_arg {
	pyreg_t *self;
	const pybytes_t *k;
	char *buf;
	size_t cap;
};

static int64_t wait_slice(void *arg, int64_t slice_ns)
{
	struct wait_arg *a = arg;

	return shmreg_await(a->self->r, a->k->p, (size_t)a->k->len, a->buf,
			    a->cap, NULL, slice_ns);
}

static bool wait_stopped(void *arg)
{
	return ((struct wait_arg *)arg)->self->closed;
}

PyDoc_STRVAR(wait_doc,
"wait(key, timeout=None) -> bytes\n"
"\n"
"The value of key, waiting until a writer puts it when it is absent.\n"
"timeout is in seconds (None: forever, 0: do not block).  Releases the\n"
"GIL while it blocks, so other threads run; signals (KeyboardInterrupt)\n"
"and close() are noticed within 100 ms.  Raises TimeoutError when the\n"
"key did not appear in time, OSError(ESHUTDOWN) when the writer closed\n"
"the registry, OSError(EOWNERDEAD) when it died.");

static PyObject *reg_wait(pyreg_t *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "key", "timeout", NULL };
	PyObject *key, *timeout = NULL, *v = NULL;
	char buf[GET_STACK];
	struct wait_arg a = { self, NULL, buf, sizeof(buf) };
	int64_t ns, n;
	pybytes_t k;
	bool absent;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:wait", kwlist, &key,
					 &timeout) ||
	    pyarg_timeout(timeout, &ns) < 0 || pyreg_check_open(self) < 0 ||
	    pyarg_key(key, &k) < 0)
		return NULL;
	a.k = &k;
	self->busy++;
	/* A value too large for the stack buffer is read again at its size;
	 * deleted in between, it is waited for again (the full timeout: a
	 * put-delete race is no reason to give up early). */
	do {
		absent = false;
		n = pyblock_run(wait_slice, &a, ns, wait_stopped, "registry");
		if (n >= 0 && n <= (int64_t)sizeof(buf))
			v = PyBytes_FromStringAndSize(buf, (Py_ssize_t)n);
		else if (n > (int64_t)sizeof(buf))
			v = get_large(self, &k, (ssize_t)n, &absent);
		else if (n != PYBLOCK_EXC)
			pyerr_errno(n, "wait");
	} while (absent);
	pybytes_release(&k);
	self->busy--;
	pyreg_release(self);
	return v;
}

PyDoc_STRVAR(watch_doc,
"watch(prefix=b\"\", since=None) -> shmreg.Watch\n"
"\n"
"A stream of the changes to keys starting with prefix: iterate it for\n"
"Events (rev, type, key), type \"put\" or \"delete\", in revision order.\n"
"since=None starts at the current revision (changes from now on); an\n"
"int starts after that revision (OSError(ERANGE) when the change ring\n"
"no longer holds it).");

static PyObject *reg_watch(pyreg_t *self, PyObject *args, PyObject *kw)
{
	if (pyreg_check_open(self) < 0)
		return NULL;
	return pywatch_new(self, args, kw);
}

/* ---- the registry as a whole ---- */

PyDoc_STRVAR(stats_doc,
"stats() -> dict\n"
"\n"
"entries, bytes_used, segment_bytes, index_capacity, arena_bytes,\n"
"arena_used, revision, generation (segment handoffs), ring_capacity,\n"
"writer_pid, and state (\"open\", \"closed\" by its writer, or \"dead\").");

static PyObject *reg_stats(pyreg_t *self, PyObject *unused)
{
	shmreg_stats_t st;
	int ret;

	(void)unused;
	if (pyreg_check_open(self) < 0)
		return NULL;
	ret = shmreg_stats(self->r, &st);
	if (ret < 0)
		return pyerr_errno(ret, "stats");
	return pystats_dict(&st);
}

PyDoc_STRVAR(close_doc,
"close()\n"
"\n"
"Unmap the registry.  Later calls raise ValueError; a wait or watch\n"
"blocked in another thread raises ValueError within 100 ms.  Closing\n"
"twice is allowed.");

static PyObject *reg_close(pyreg_t *self, PyObject *unused)
{
	(void)unused;
	self->closed = true;
	drop_spares(self);
	pyreg_release(self);
	Py_RETURN_NONE;
}

static PyObject *reg_enter(pyreg_t *self, PyObject *unused)
{
	(void)unused;
	if (pyreg_check_open(self) < 0)
		return NULL;
	return Py_NewRef((PyObject *)self);
}

static PyObject *reg_exit(pyreg_t *self, PyObject *args)
{
	(void)args;
	return reg_close(self, NULL);
}

static PyObject *reg_revision(pyreg_t *self, void *closure)
{
	(void)closure;
	if (pyreg_check_open(self) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(shmreg_revision(self->r));
}

static PyObject *reg_name(pyreg_t *self, void *closure)
{
	(void)closure;
	return Py_NewRef(self->name);
}

static PyObject *reg_closed(pyreg_t *self, void *closure)
{
	(void)closure;
	return PyBool_FromLong(self->closed);
}

static PyObject *reg_repr(pyreg_t *self)
{
	if (self->closed)
		return PyUnicode_FromFormat("<shmreg.Registry %R closed>",
					    self->name);
	return PyUnicode_FromFormat("<shmreg.Registry %R revision %llu>",
				    self->name, (unsigned long long)
				    shmreg_revision(self->r));
}

static PyMethodDef reg_methods[] = {
	{ "get", (PyCFunction)(void (*)(void))reg_get,
	  METH_FASTCALL | METH_KEYWORDS, get_doc },
	{ "info", (PyCFunction)reg_info, METH_O, info_doc },
	{ "list", (PyCFunction)(void (*)(void))reg_list,
	  METH_VARARGS | METH_KEYWORDS, list_doc },
	{ "find", (PyCFunction)reg_find, METH_O, find_doc },
	{ "children", (PyCFunction)reg_children, METH_O, children_doc },
	{ "attrs", (PyCFunction)reg_attrs, METH_O, attrs_doc },
	{ "wait", (PyCFunction)(void (*)(void))reg_wait,
	  METH_VARARGS | METH_KEYWORDS, wait_doc },
	{ "watch", (PyCFunction)(void (*)(void))reg_watch,
	  METH_VARARGS | METH_KEYWORDS, watch_doc },
	{ "stats", (PyCFunction)reg_stats, METH_NOARGS, stats_doc },
	{ "close", (PyCFunction)reg_close, METH_NOARGS, close_doc },
	{ "__enter__", (PyCFunction)reg_enter, METH_NOARGS,
	  "Return the registry itself." },
	{ "__exit__", (PyCFunction)reg_exit, METH_VARARGS,
	  "Close the registry." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef reg_getset[] = {
	{ "revision", (getter)reg_revision, NULL,
	  "The registry's current revision (+1 per committed change).", NULL },
	{ "name", (getter)reg_name, NULL, "The name given to open().", NULL },
	{ "closed", (getter)reg_closed, NULL, "True after close().", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMappingMethods reg_as_mapping = {
	.mp_subscript = (binaryfunc)reg_subscript,
};

static PySequenceMethods reg_as_sequence = {
	.sq_contains = (objobjproc)reg_contains,
};

PyDoc_STRVAR(reg_doc,
"A registry mapped read-only: shmreg.open(name).\n"
"\n"
"r[key] and r.get(key) read a value (bytes) lock-free; `key in r` tests\n"
"for one.  Keys are bytes (or str, encoded as UTF-8), 1..1024 bytes.\n"
"A Registry opened before fork() keeps working in every child: open it\n"
"in a pre-fork server's master and read it in the workers.  Any number\n"
"of threads may use one Registry at once.");

PyTypeObject pyreg_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmreg.Registry",
	.tp_basicsize = sizeof(pyreg_t),
	.tp_dealloc = (destructor)reg_dealloc,
	.tp_repr = (reprfunc)reg_repr,
	.tp_as_sequence = &reg_as_sequence,
	.tp_as_mapping = &reg_as_mapping,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = reg_doc,
	.tp_methods = reg_methods,
	.tp_getset = reg_getset,
};

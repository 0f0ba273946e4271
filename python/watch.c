/* SPDX-License-Identifier: MIT */
/* watch.c - shmreg.Watch: the change stream of a registry, as an iterator. */
#include <errno.h>

#include "module.h"

/*
 * A shmreg_watch_t is used by one thread at a time (its event key lives in
 * the watch until the next call): @busy refuses a second thread while the
 * first blocks without the GIL.  close() from another thread meanwhile
 * sets @closing; the blocked next() notices it between slices and does the
 * real close itself.
 */
typedef struct {
	PyObject_HEAD
	pyreg_t *reg;       /* holds the registry (and its mapping) alive */
	shmreg_watch_t *w;  /* NULL once closed */
	bool busy;
	bool closing;
} pywatch_t;

static void watch_free(pywatch_t *self)
{
	if (!self->w)
		return;
	shmreg_watch_close(self->w);
	self->w = NULL;
	self->reg->watches--;
	pyreg_release(self->reg);
}

PyObject *pywatch_new(pyreg_t *reg, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "prefix", "since", NULL };
	PyObject *prefix = NULL, *since = Py_None;
	pybytes_t p = { .p = "", .len = 0 };
	unsigned long long start;
	pywatch_t *self;
	int ret;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:watch", kwlist,
					 &prefix, &since))
		return NULL;
	if (since == Py_None) {
		start = shmreg_revision(reg->r);
	} else {
		if (!PyLong_Check(since))
			return PyErr_Format(PyExc_TypeError, "since must be "
					    "a revision (int) or None");
		start = PyLong_AsUnsignedLongLong(since);
		if (start == (unsigned long long)-1 && PyErr_Occurred()) {
			PyErr_SetString(PyExc_ValueError,
					"since must be a revision >= 0");
			return NULL;
		}
	}
	if (prefix && pyarg_prefix(prefix, &p) < 0)
		return NULL;
	self = PyObject_New(pywatch_t, &pywatch_type);
	if (!self) {
		pybytes_release(&p);
		return NULL;
	}
	self->reg = (pyreg_t *)Py_NewRef((PyObject *)reg);
	self->w = NULL;
	self->busy = self->closing = false;
	ret = shmreg_watch_open(reg->r, p.p, (size_t)p.len, start, &self->w);
	pybytes_release(&p);
	if (ret < 0) {
		Py_DECREF(self);
		return pyerr_errno(ret, "watch");
	}
	reg->watches++;
	return (PyObject *)self;
}

static void watch_dealloc(pywatch_t *self)
{
	watch_free(self);
	Py_DECREF(self->reg);
	PyObject_Free(self);
}

struct next_arg {
	pywatch_t *self;
	shmreg_event_t ev;
};

static int64_t next_slice(void *arg, int64_t slice_ns)
{
	struct next_arg *a = arg;

	return shmreg_watch_next(a->self->w, &a->ev, slice_ns);
}

static bool next_stopped(void *arg)
{
	pywatch_t *self = ((struct next_arg *)arg)->self;

	return self->closing || self->reg->closed;
}

/* The next event within @ns; NULL with an exception otherwise. */
static PyObject *watch_next_ns(pywatch_t *self, int64_t ns)
{
	struct next_arg a = { .self = self };
	int64_t ret;

	if (!self->w || self->closing || self->reg->closed)
		return pyerr_closed("watch");
	if (self->busy)
		return PyErr_Format(PyExc_RuntimeError, "this Watch is in "
				    "use by another thread");
	self->busy = true;
	ret = pyblock_run(next_slice, &a, ns, next_stopped, "watch");
	self->busy = false;
	if (self->closing)
		watch_free(self);
	if (ret == PYBLOCK_EXC)
		return NULL;
	if (ret < 0)
		return pyerr_errno(ret, "watch");
	return pyevent_from(&a.ev);
}

PyDoc_STRVAR(next_doc,
"next(timeout=None) -> shmreg.Event\n"
"\n"
"The next change, waiting up to timeout seconds (None: forever, 0: do\n"
"not block) with the GIL released.  Raises TimeoutError when none came in\n"
"time; OSError(ERANGE) when the watcher fell behind the change ring and\n"
"events were lost (resync: note r.revision, list, watch(since=that));\n"
"OSError(ESHUTDOWN) / OSError(EOWNERDEAD) when the writer closed the\n"
"registry or died.");

static PyObject *watch_next(pywatch_t *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = NULL;
	int64_t ns;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:next", kwlist,
					 &timeout) ||
	    pyarg_timeout(timeout, &ns) < 0)
		return NULL;
	return watch_next_ns(self, ns);
}

static PyObject *watch_iternext(pywatch_t *self)
{
	return watch_next_ns(self, -1);
}

PyDoc_STRVAR(wclose_doc,
"close()\n"
"\n"
"End the stream; a next() blocked in another thread raises ValueError\n"
"within 100 ms.  Closing twice is allowed.");

static PyObject *watch_close(pywatch_t *self, PyObject *unused)
{
	(void)unused;
	if (self->busy)
		self->closing = true;   /* the blocked next() frees it */
	else
		watch_free(self);
	Py_RETURN_NONE;
}

static PyObject *watch_enter(pywatch_t *self, PyObject *unused)
{
	(void)unused;
	return Py_NewRef((PyObject *)self);
}

static PyObject *watch_exit(pywatch_t *self, PyObject *args)
{
	(void)args;
	return watch_close(self, NULL);
}

static PyMethodDef watch_methods[] = {
	{ "next", (PyCFunction)(void (*)(void))watch_next,
	  METH_VARARGS | METH_KEYWORDS, next_doc },
	{ "close", (PyCFunction)watch_close, METH_NOARGS, wclose_doc },
	{ "__enter__", (PyCFunction)watch_enter, METH_NOARGS,
	  "Return the watch itself." },
	{ "__exit__", (PyCFunction)watch_exit, METH_VARARGS,
	  "Close the watch." },
	{ NULL, NULL, 0, NULL },
};

PyDoc_STRVAR(watch_doc,
"A stream of changes: Registry.watch(prefix=b\"\", since=None).\n"
"\n"
"Iterating it blocks (GIL released) for each next Event (rev, type, key);\n"
"w.next(timeout) waits at most timeout seconds and raises TimeoutError.\n"
"Use it from one thread at a time.");

PyTypeObject pywatch_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmreg.Watch",
	.tp_basicsize = sizeof(pywatch_t),
	.tp_dealloc = (destructor)watch_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = watch_doc,
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)watch_iternext,
	.tp_methods = watch_methods,
};

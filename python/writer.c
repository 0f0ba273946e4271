/* SPDX-License-Identifier: MIT */
/*
 * writer.c - shmreg.Writer: this process owns a registry and writes it
 * directly (the embedded writer).
 *
 * Its calls never block, so they keep the GIL, which also serialises
 * them as the C writer requires (one thread at a time).  A forked child
 * is not the writer (the C library closed the child's copies of the lock
 * and segment descriptors at fork): its calls raise OSError(EBUSY), and
 * close() in a child leaves the parent's registry open.
 */
#include <errno.h>

#include "module.h"

typedef struct {
	PyObject_HEAD
	shmreg_writer_t *w;  /* NULL once closed */
	unsigned gen;        /* pyfork_generation when it was opened */
	PyObject *name;
} pywriter_t;

static PyObject *writer_new(PyTypeObject *type, PyObject *args,
			    PyObject *kw)
{
	static char *kwlist[] = { "name", "truncate", "mode",
				  "initial_entries", "initial_arena",
				  "ring_events", NULL };
	shmreg_writer_opts_t o = { 0 };
	PyObject *name, *fs = NULL;
	unsigned long long entries = 0, arena = 0;
	unsigned int mode = 0, ring = 0;
	int truncate = 0, ret;
	pywriter_t *self;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$pIKKI:Writer", kwlist,
					 &name, &truncate, &mode, &entries,
					 &arena, &ring) ||
	    !PyUnicode_FSConverter(name, &fs))
		return NULL;
	o.flags = truncate ? SHMREG_WRITER_TRUNCATE : 0;
	o.mode = mode;
	o.initial_entries = entries;
	o.initial_arena = arena;
	o.ring_events = ring;
	self = (pywriter_t *)type->tp_alloc(type, 0);
	if (!self) {
		Py_DECREF(fs);
		return NULL;
	}
	self->name = Py_NewRef(name);
	ret = shmreg_writer_open(PyBytes_AS_STRING(fs), &o, &self->w);
	Py_DECREF(fs);
	if (ret < 0) {
		if (ret == -EINVAL)
			PyErr_Format(PyExc_ValueError, "Writer(%R): bad name "
				     "or option", name);
		else {
			errno = -ret;
			PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError,
							     name);
		}
		Py_DECREF(self);
		return NULL;
	}
	self->gen = pyfork_generation;
	return (PyObject *)self;
}

static void writer_dealloc(pywriter_t *self)
{
	shmreg_writer_close(self->w);
	Py_XDECREF(self->name);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int writer_ready(PyObject *o)
{
	pywriter_t *self = (pywriter_t *)o;

	if (!self->w) {
		pyerr_closed("writer");
		return -1;
	}
	if (self->gen != pyfork_generation) {
		/* EBUSY: the registry already has a writer, the parent */
		pyerr_errno(-EBUSY, "a forked child is not the writer");
		return -1;
	}
	return 0;
}

static int64_t w_put(PyObject *o, const void *k, size_t kl, const void *v,
		     size_t vl, const shmreg_put_opts_t *opts)
{
	/* an ephemeral entry belongs to a client connection, which the
	 * embedded writer has not: nothing would ever remove it */
	if (opts->flags & SHMREG_EPHEMERAL)
		return -EINVAL;
	return shmreg_writer_put(((pywriter_t *)o)->w, k, kl, v, vl, opts);
}

static int64_t w_del(PyObject *o, const void *k, size_t kl)
{
	return shmreg_writer_del(((pywriter_t *)o)->w, k, kl);
}

static int64_t w_del_tree(PyObject *o, const void *k, size_t kl)
{
	return shmreg_writer_del_tree(((pywriter_t *)o)->w, k, kl);
}

static int64_t w_set_attrs(PyObject *o, const void *k, size_t kl,
			   const shmreg_attr_t *a, uint32_t n)
{
	return shmreg_writer_set_attrs(((pywriter_t *)o)->w, k, kl, a, n);
}

static const struct pychange_ops writer_ops = {
	.put = w_put,
	.del = w_del,
	.del_tree = w_del_tree,
	.set_attrs = w_set_attrs,
	.ready = writer_ready,
};

static PyObject *writer_put(PyObject *self, PyObject *args, PyObject *kw)
{
	return pychange_put(self, &writer_ops, args, kw);
}

static PyObject *writer_delete(PyObject *self, PyObject *args, PyObject *kw)
{
	return pychange_delete(self, &writer_ops, args, kw);
}

static PyObject *writer_set_attrs(PyObject *self, PyObject *args,
				  PyObject *kw)
{
	return pychange_set_attrs(self, &writer_ops, args, kw);
}

PyDoc_STRVAR(wclose_doc,
"close()\n"
"\n"
"Mark the registry closed (its waiters get OSError(ESHUTDOWN); the\n"
"contents stay readable) and release the writer lock.  In a forked child\n"
"it only forgets the parent's writer.  Closing twice is allowed.");

static PyObject *writer_close(pywriter_t *self, PyObject *unused)
{
	(void)unused;
	shmreg_writer_close(self->w);
	self->w = NULL;
	Py_RETURN_NONE;
}

static PyObject *writer_enter(pywriter_t *self, PyObject *unused)
{
	(void)unused;
	if (!self->w)
		return pyerr_closed("writer");
	return Py_NewRef((PyObject *)self);
}

static PyObject *writer_exit(pywriter_t *self, PyObject *args)
{
	(void)args;
	return writer_close(self, NULL);
}

static PyObject *writer_revision(pywriter_t *self, void *closure)
{
	(void)closure;
	if (!self->w)
		return pyerr_closed("writer");
	return PyLong_FromUnsignedLongLong(shmreg_writer_revision(self->w));
}

static PyObject *writer_closed(pywriter_t *self, void *closure)
{
	(void)closure;
	return PyBool_FromLong(self->w == NULL);
}

static PyObject *writer_name(pywriter_t *self, void *closure)
{
	(void)closure;
	return Py_NewRef(self->name);
}

static PyMethodDef writer_methods[] = {
	{ "put", (PyCFunction)(void (*)(void))writer_put,
	  METH_VARARGS | METH_KEYWORDS, pychange_put_doc },
	{ "delete", (PyCFunction)(void (*)(void))writer_delete,
	  METH_VARARGS | METH_KEYWORDS, pychange_delete_doc },
	{ "set_attrs", (PyCFunction)(void (*)(void))writer_set_attrs,
	  METH_VARARGS | METH_KEYWORDS, pychange_set_attrs_doc },
	{ "close", (PyCFunction)writer_close, METH_NOARGS, wclose_doc },
	{ "__enter__", (PyCFunction)writer_enter, METH_NOARGS,
	  "Return the writer itself." },
	{ "__exit__", (PyCFunction)writer_exit, METH_VARARGS,
	  "Close the writer." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef writer_getset[] = {
	{ "revision", (getter)writer_revision, NULL,
	  "The registry's current revision.", NULL },
	{ "name", (getter)writer_name, NULL, "The name given.", NULL },
	{ "closed", (getter)writer_closed, NULL, "True after close().", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

PyDoc_STRVAR(writer_doc,
"Writer(name, *, truncate=False, mode=0, initial_entries=0,\n"
"       initial_arena=0, ring_events=0)\n"
"\n"
"Own registry name and write it directly (no daemon): the embedded\n"
"writer, for instance in a pre-fork server's master.  One writer per\n"
"registry: a second one raises OSError(EBUSY).  truncate starts it\n"
"empty; mode is the segment's file mode (0: 0o644); initial_entries and\n"
"initial_arena size it up front (0: defaults; it grows on demand);\n"
"ring_events is how many changes watchers may lag behind (a power of\n"
"two >= 1024; 0: 65536).\n"
"put, delete and set_attrs are those of Client (ephemeral excepted).\n"
"Use it from one thread at a time, in the process that opened it.");

PyTypeObject pywriter_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmreg.Writer",
	.tp_basicsize = sizeof(pywriter_t),
	.tp_dealloc = (destructor)writer_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = writer_doc,
	.tp_methods = writer_methods,
	.tp_getset = writer_getset,
	.tp_new = writer_new,
};

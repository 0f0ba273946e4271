/* SPDX-License-Identifier: MIT */
/*
 * batch.c - shmreg.Batch: puts, deletes and attribute updates sent to
 * shmregd in one request and applied all or nothing (shmreg_batch_*).
 *
 * Adding an operation only encodes it (no I/O, the GIL is kept); commit()
 * is one round trip on the Client's connection, with the GIL released as
 * every Client call.  A batch is bound to the connection it began on: if
 * that connection is gone (closed, or replaced in a forked child) the
 * batch is discarded instead of sent on a freed one.
 */
#include <errno.h>

#include "module.h"

typedef struct {
	PyObject_HEAD
	pyclient_t *client;   /* holds the Client alive */
	shmreg_client_t *c;   /* the connection the batch began on */
	shmreg_batch_t *b;    /* NULL once committed or aborted */
	PyObject *absent;     /* per operation: the key an -ENOENT names */
	PyObject *revision;   /* None until committed */
	PyObject *failed;     /* None, or the failing operation's index */
} pybatch_t;

PyObject *pybatch_new(pyclient_t *client)
{
	pybatch_t *self = PyObject_New(pybatch_t, &pybatch_type);
	int ret;

	if (!self)
		return NULL;
	self->client = (pyclient_t *)Py_NewRef((PyObject *)client);
	self->c = client->c;
	self->b = NULL;
	self->revision = Py_NewRef(Py_None);
	self->failed = Py_NewRef(Py_None);
	self->absent = PyList_New(0);
	if (!self->absent) {
		Py_DECREF(self);
		return NULL;
	}
	ret = shmreg_batch_begin(client->c, &self->b);
	if (ret < 0) {
		Py_DECREF(self);
		return pyerr_errno(ret, "batch");
	}
	return (PyObject *)self;
}

static void batch_dealloc(pybatch_t *self)
{
	shmreg_batch_abort(self->b);
	Py_XDECREF(self->client);
	Py_XDECREF(self->absent);
	Py_XDECREF(self->revision);
	Py_XDECREF(self->failed);
	PyObject_Free(self);
}

/* Still open, and its connection still the Client's? */
static int batch_ready(PyObject *o)
{
	pybatch_t *self = (pybatch_t *)o;

	if (!self->b) {
		PyErr_SetString(PyExc_ValueError,
				"operation on a committed or aborted batch");
		return -1;
	}
	if (self->client->c != self->c) {
		shmreg_batch_abort(self->b);
		self->b = NULL;
		PyErr_SetString(PyExc_ValueError, "the batch's connection was "
				"closed (or this is a forked child): discarded");
		return -1;
	}
	if (self->client->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"this Client is in use by another thread");
		return -1;
	}
	return 0;
}

/*
 * Each operation first notes the key an -ENOENT of it would name (note),
 * then is added; added() forgets the note when adding failed, so the list
 * stays one entry per operation.
 */
static int64_t added(pybatch_t *self, int ret)
{
	Py_ssize_t n = PyList_GET_SIZE(self->absent);

	if (ret < 0)
		PyList_SetSlice(self->absent, n - 1, n, NULL);
	return ret;
}

static int note(pybatch_t *self, const void *k, size_t kl)
{
	PyObject *o = PyBytes_FromStringAndSize(k, (Py_ssize_t)kl);
	int ret = o ? PyList_Append(self->absent, o) : -1;

	Py_XDECREF(o);
	if (ret < 0)
		PyErr_Clear();  /* reported as -ENOMEM */
	return ret;
}

static int64_t b_put(PyObject *o, const void *k, size_t kl, const void *v,
		     size_t vl, const shmreg_put_opts_t *opts)
{
	pybatch_t *self = (pybatch_t *)o;

	/* a put's -ENOENT is its parent's */
	if (opts->parent ? note(self, opts->parent, opts->parent_len)
			 : note(self, k, kl))
		return -ENOMEM;
	return added(self, shmreg_batch_put(self->b, k, kl, v, vl, opts));
}

static int64_t b_del(PyObject *o, const void *k, size_t kl)
{
	pybatch_t *self = (pybatch_t *)o;

	if (note(self, k, kl))
		return -ENOMEM;
	return added(self, shmreg_batch_del(self->b, k, kl));
}

static int64_t b_del_tree(PyObject *o, const void *k, size_t kl)
{
	pybatch_t *self = (pybatch_t *)o;

	if (note(self, k, kl))
		return -ENOMEM;
	return added(self, shmreg_batch_del_tree(self->b, k, kl));
}

static int64_t b_set_attrs(PyObject *o, const void *k, size_t kl,
			   const shmreg_attr_t *a, uint32_t n)
{
	pybatch_t *self = (pybatch_t *)o;

	if (note(self, k, kl))
		return -ENOMEM;
	return added(self, shmreg_batch_set_attrs(self->b, k, kl, a, n));
}

static const struct pychange_ops batch_ops = {
	.put = b_put,
	.del = b_del,
	.del_tree = b_del_tree,
	.set_attrs = b_set_attrs,
	.ready = batch_ready,
};

/* The shared calls return the C result (0 for an added operation):
 * an added operation returns None. */
static PyObject *none_for(PyObject *res)
{
	if (!res)
		return NULL;
	Py_DECREF(res);
	Py_RETURN_NONE;
}

static PyObject *batch_put(PyObject *self, PyObject *args, PyObject *kw)
{
	return none_for(pychange_put(self, &batch_ops, args, kw));
}

static PyObject *batch_delete(PyObject *self, PyObject *args, PyObject *kw)
{
	return none_for(pychange_delete(self, &batch_ops, args, kw));
}

static PyObject *batch_set_attrs(PyObject *self, PyObject *args,
				 PyObject *kw)
{
	return none_for(pychange_set_attrs(self, &batch_ops, args, kw));
}

PyDoc_STRVAR(commit_doc,
"commit() -> int\n"
"\n"
"Send the batch and return the revision of its last change (the current\n"
"revision for an empty batch); also kept in b.revision.  If an operation\n"
"would fail, none is applied: its exception is raised (KeyError(key) for\n"
"an absent key or parent, as bytes; FileExistsError for a compare-and-set\n"
"mismatch; OSError(ENOTEMPTY), ...) and b.failed is its index (0-based,\n"
"in the order added).  Connection errors leave b.failed None.");

static PyObject *batch_commit(pybatch_t *self, PyObject *unused)
{
	uint32_t failed = SHMREG_BATCH_NONE;
	shmreg_batch_t *b;
	int64_t ret;
	char what[64];

	(void)unused;
	if (batch_ready((PyObject *)self) < 0)
		return NULL;
	b = self->b;
	self->b = NULL;   /* the commit frees it, whatever it returns */
	ret = PYCLIENT_ROUND_TRIP(self->client,
				  shmreg_batch_commit(b, &failed));
	if (ret >= 0) {
		Py_SETREF(self->revision, PyLong_FromLongLong(ret));
		return self->revision ? Py_NewRef(self->revision) : NULL;
	}
	if (failed == SHMREG_BATCH_NONE ||
	    failed >= (uint32_t)PyList_GET_SIZE(self->absent))
		return pyerr_errno(ret, "batch");
	Py_SETREF(self->failed, PyLong_FromUnsignedLong(failed));
	if (ret == -ENOENT)
		return pyerr_key(ret, "batch",
				 PyList_GET_ITEM(self->absent, failed));
	snprintf(what, sizeof(what), "batch operation %u", failed);
	return pyerr_errno(ret, what);
}

PyDoc_STRVAR(abort_doc,
"abort()\n"
"\n"
"Discard the batch without sending anything.  Allowed after commit.");

static PyObject *batch_abort(pybatch_t *self, PyObject *unused)
{
	(void)unused;
	shmreg_batch_abort(self->b);
	self->b = NULL;
	Py_RETURN_NONE;
}

static PyObject *batch_enter(pybatch_t *self, PyObject *unused)
{
	(void)unused;
	if (batch_ready((PyObject *)self) < 0)
		return NULL;
	return Py_NewRef((PyObject *)self);
}

/* Commit when the block ended normally, else discard (and let the
 * exception go on). */
static PyObject *batch_exit(pybatch_t *self, PyObject *args)
{
	PyObject *res;

	if (PyTuple_GET_SIZE(args) > 0 && PyTuple_GET_ITEM(args, 0) != Py_None)
		return batch_abort(self, NULL) ? Py_NewRef(Py_False) : NULL;
	if (!self->b)   /* committed or aborted inside the block */
		Py_RETURN_FALSE;
	res = batch_commit(self, NULL);
	if (!res)
		return NULL;
	Py_DECREF(res);
	Py_RETURN_FALSE;
}

static Py_ssize_t batch_len(pybatch_t *self)
{
	return PyList_GET_SIZE(self->absent);
}

static PyObject *batch_revision(pybatch_t *self, void *closure)
{
	(void)closure;
	return Py_NewRef(self->revision);
}

static PyObject *batch_failed(pybatch_t *self, void *closure)
{
	(void)closure;
	return Py_NewRef(self->failed);
}

PyDoc_STRVAR(bput_doc,
"put(key, value, *, ttl=None, attrs=None, parent=None, owner_pid=None,\n"
"    ephemeral=False, expect_rev=None)\n"
"\n"
"Add a put (Client.put's arguments; parent may be put earlier in the\n"
"batch, expect_rev sees the batch's own earlier puts).  Bad arguments\n"
"raise TypeError/ValueError at once and leave the batch as it was.");

PyDoc_STRVAR(bdelete_doc,
"delete(key, recursive=False)\n"
"\n"
"Add a delete (recursive: of key and its descendants).");

PyDoc_STRVAR(bset_attrs_doc,
"set_attrs(key, attrs)\n"
"\n"
"Add an attribute update (Client.set_attrs's arguments).");

static PyMethodDef batch_methods[] = {
	{ "put", (PyCFunction)(void (*)(void))batch_put,
	  METH_VARARGS | METH_KEYWORDS, bput_doc },
	{ "delete", (PyCFunction)(void (*)(void))batch_delete,
	  METH_VARARGS | METH_KEYWORDS, bdelete_doc },
	{ "set_attrs", (PyCFunction)(void (*)(void))batch_set_attrs,
	  METH_VARARGS | METH_KEYWORDS, bset_attrs_doc },
	{ "commit", (PyCFunction)batch_commit, METH_NOARGS, commit_doc },
	{ "abort", (PyCFunction)batch_abort, METH_NOARGS, abort_doc },
	{ "__enter__", (PyCFunction)batch_enter, METH_NOARGS,
	  "Return the batch itself." },
	{ "__exit__", (PyCFunction)batch_exit, METH_VARARGS,
	  "Commit the batch, or discard it when the block raised." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef batch_getset[] = {
	{ "revision", (getter)batch_revision, NULL,
	  "The revision of the batch's last change once committed, else None.",
	  NULL },
	{ "failed", (getter)batch_failed, NULL,
	  "The index of the operation that failed the commit, else None.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PySequenceMethods batch_as_sequence = {
	.sq_length = (lenfunc)batch_len,
};

PyDoc_STRVAR(batch_doc,
"An all-or-nothing batch of changes: Client.batch().\n"
"\n"
"    with c.batch() as b:\n"
"        b.put(\"a\", b\"1\")\n"
"        b.delete(\"b\")\n"
"\n"
"The daemon checks every operation, in order, against the registry as\n"
"the earlier ones leave it, before it writes anything; then applies all\n"
"in one commit (a snapshot reader sees all or none), each change with\n"
"its own revision.  len(b) is the number of operations added.  Use it\n"
"from one thread, with its Client, in the process that began it.");

PyTypeObject pybatch_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmreg.Batch",
	.tp_basicsize = sizeof(pybatch_t),
	.tp_dealloc = (destructor)batch_dealloc,
	.tp_as_sequence = &batch_as_sequence,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = batch_doc,
	.tp_methods = batch_methods,
	.tp_getset = batch_getset,
};

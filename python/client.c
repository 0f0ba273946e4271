/* SPDX-License-Identifier: MIT */
/*
 * client.c - shmreg.Client: a connection to shmregd, which writes for us.
 *
 * Every call waits for the daemon's answer on the socket with the GIL
 * released.  A shmreg_client_t is used by one thread at a time: @busy
 * (module.h) refuses a second thread while the first waits.  It also
 * belongs to the
 * process that connected: a forked child would interleave its requests
 * with the parent's on the one shared socket, so a Client used in a child
 * connects anew first (closing only the child's copy of the parent's
 * socket, which leaves the parent's connection alone).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

static int dial(pyclient_t *self)
{
	const char *sock = self->socket == Py_None ? NULL
			 : PyBytes_AS_STRING(self->socket);
	const char *reg = PyBytes_AS_STRING(self->registry);
	shmreg_client_t *c = NULL;
	int ret;

	Py_BEGIN_ALLOW_THREADS
	ret = shmreg_connect(sock, reg, &c);
	Py_END_ALLOW_THREADS
	if (ret < 0) {
		pyerr_errno(ret, "connect");
		return -1;
	}
	self->c = c;
	self->gen = pyfork_generation;
	return 0;
}

PyObject *pyclient_connect(PyObject *mod, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "socket", "registry", NULL };
	PyObject *sock = Py_None, *reg = Py_None;
	pyclient_t *self;
	const char *env;

	(void)mod;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:connect", kwlist,
					 &sock, &reg))
		return NULL;
	self = PyObject_New(pyclient_t, &pyclient_type);
	if (!self)
		return NULL;
	self->c = NULL;
	self->busy = false;
	self->socket = self->registry = NULL;
	if (sock == Py_None)
		self->socket = Py_NewRef(Py_None);
	else if (!PyUnicode_FSConverter(sock, &self->socket))
		goto fail;
	if (reg == Py_None) {
		/* as shmregctl: $SHMREG_REGISTRY, else "default" */
		env = getenv("SHMREG_REGISTRY");
		self->registry = PyBytes_FromString(env && *env ? env
							       : "default");
		if (!self->registry)
			goto fail;
	} else if (!PyUnicode_FSConverter(reg, &self->registry)) {
		goto fail;
	}
	if (dial(self) < 0)
		goto fail;
	return (PyObject *)self;
fail:
	Py_DECREF(self);
	return NULL;
}

static void client_dealloc(pyclient_t *self)
{
	shmreg_disconnect(self->c);
	Py_XDECREF(self->socket);
	Py_XDECREF(self->registry);
	PyObject_Free(self);
}

int pyclient_ready(PyObject *o)
{
	pyclient_t *self = (pyclient_t *)o;

	if (!self->c) {
		pyerr_closed("client");
		return -1;
	}
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"this Client is in use by another thread");
		return -1;
	}
	if (self->gen != pyfork_generation) {
		shmreg_disconnect(self->c);  /* our copy of the fd only */
		self->c = NULL;
		return dial(self);
	}
	return 0;
}

/* The backend calls: one PYCLIENT_ROUND_TRIP each (module.h). */
static int64_t c_put(PyObject *o, const void *k, size_t kl, const void *v,
		     size_t vl, const shmreg_put_opts_t *opts)
{
	pyclient_t *self = (pyclient_t *)o;

	return PYCLIENT_ROUND_TRIP(self, shmreg_put(self->c, k, kl, v, vl, opts));
}

static int64_t c_del(PyObject *o, const void *k, size_t kl)
{
	pyclient_t *self = (pyclient_t *)o;

	return PYCLIENT_ROUND_TRIP(self, shmreg_del(self->c, k, kl));
}

static int64_t c_del_tree(PyObject *o, const void *k, size_t kl)
{
	pyclient_t *self = (pyclient_t *)o;

	return PYCLIENT_ROUND_TRIP(self, shmreg_del_tree(self->c, k, kl));
}

static int64_t c_set_attrs(PyObject *o, const void *k, size_t kl,
			   const shmreg_attr_t *a, uint32_t n)
{
	pyclient_t *self = (pyclient_t *)o;

	return PYCLIENT_ROUND_TRIP(self, shmreg_set_attrs(self->c, k, kl, a, n));
}

static const struct pychange_ops client_ops = {
	.put = c_put,
	.del = c_del,
	.del_tree = c_del_tree,
	.set_attrs = c_set_attrs,
	.ready = pyclient_ready,
};

static PyObject *client_put(PyObject *self, PyObject *args, PyObject *kw)
{
	return pychange_put(self, &client_ops, args, kw);
}

static PyObject *client_delete(PyObject *self, PyObject *args, PyObject *kw)
{
	return pychange_delete(self, &client_ops, args, kw);
}

static PyObject *client_set_attrs(PyObject *self, PyObject *args,
				  PyObject *kw)
{
	return pychange_set_attrs(self, &client_ops, args, kw);
}

PyDoc_STRVAR(ping_doc,
"ping() -> int\n"
"\n"
"A round trip that changes nothing; returns the registry's revision.");

static PyObject *client_ping(pyclient_t *self, PyObject *unused)
{
	int64_t ret;

	(void)unused;
	if (pyclient_ready((PyObject *)self) < 0)
		return NULL;
	ret = PYCLIENT_ROUND_TRIP(self, shmreg_ping(self->c));
	return ret < 0 ? pyerr_errno(ret, "ping") : PyLong_FromLongLong(ret);
}

PyDoc_STRVAR(batch_doc,
"batch() -> shmreg.Batch\n"
"\n"
"A batch of puts, deletes and attribute updates applied all or nothing,\n"
"in one commit:\n"
"\n"
"    with c.batch() as b:\n"
"        b.delete(\"token/3\")\n"
"        b.put(\"token/4\", b\"1\", expect_rev=0)\n"
"    print(b.revision)    # the revision of its last change\n"
"\n"
"Nothing is sent until the with block ends (or b.commit()); an exception\n"
"inside it discards the batch.  See shmreg.Batch.");

static PyObject *client_batch(pyclient_t *self, PyObject *unused)
{
	(void)unused;
	if (pyclient_ready((PyObject *)self) < 0)
		return NULL;
	return pybatch_new(self);
}

static int put_u64(PyObject *d, const char *name, uint64_t v)
{
	PyObject *o = PyLong_FromUnsignedLongLong(v);
	int ret = o ? PyDict_SetItemString(d, name, o) : -1;

	Py_XDECREF(o);
	return ret;
}

PyDoc_STRVAR(cstats_doc,
"stats() -> dict\n"
"\n"
"The registry's stats as Registry.stats() reports them, with the\n"
"daemon's own under the key \"daemon\" (connections, requests, owners,\n"
"ephemeral, closed_bad, refused, stalled, out_highwater, pauses,\n"
"owner_deletes, idle_closed, over_budget, in_buffered).");

static PyObject *client_stats(pyclient_t *self, PyObject *unused)
{
	shmreg_daemon_stats_t ds;
	shmreg_stats_t st;
	PyObject *d, *dd;
	int64_t ret;

	(void)unused;
	if (pyclient_ready((PyObject *)self) < 0)
		return NULL;
	ret = PYCLIENT_ROUND_TRIP(self, shmreg_client_stats(self->c, &st, &ds));
	if (ret < 0)
		return pyerr_errno(ret, "stats");
	d = pystats_dict(&st);
	dd = PyDict_New();
	if (!d || !dd || put_u64(dd, "connections", ds.connections) < 0 ||
	    put_u64(dd, "requests", ds.requests) < 0 ||
	    put_u64(dd, "owners", ds.owners) < 0 ||
	    put_u64(dd, "ephemeral", ds.ephemeral) < 0 ||
	    put_u64(dd, "closed_bad", ds.closed_bad) < 0 ||
	    put_u64(dd, "refused", ds.refused) < 0 ||
	    put_u64(dd, "stalled", ds.stalled) < 0 ||
	    put_u64(dd, "out_highwater", ds.out_highwater) < 0 ||
	    put_u64(dd, "pauses", ds.pauses) < 0 ||
	    put_u64(dd, "owner_deletes", ds.owner_deletes) < 0 ||
	    put_u64(dd, "idle_closed", ds.idle_closed) < 0 ||
	    put_u64(dd, "over_budget", ds.over_budget) < 0 ||
	    put_u64(dd, "in_buffered", ds.in_buffered) < 0 ||
	    PyDict_SetItemString(d, "daemon", dd) < 0)
		Py_CLEAR(d);
	Py_XDECREF(dd);
	return d;
}

PyDoc_STRVAR(cclose_doc,
"close()\n"
"\n"
"Close the connection: the daemon removes the entries put with\n"
"ephemeral=True on it.  Later calls raise ValueError; closing twice is\n"
"allowed.");

static PyObject *client_close(pyclient_t *self, PyObject *unused)
{
	(void)unused;
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"this Client is in use by another thread");
		return NULL;
	}
	shmreg_disconnect(self->c);
	self->c = NULL;
	Py_RETURN_NONE;
}

static PyObject *client_enter(pyclient_t *self, PyObject *unused)
{
	(void)unused;
	if (!self->c)
		return pyerr_closed("client");
	return Py_NewRef((PyObject *)self);
}

static PyObject *client_exit(pyclient_t *self, PyObject *args)
{
	(void)args;
	return client_close(self, NULL);
}

static PyObject *client_closed(pyclient_t *self, void *closure)
{
	(void)closure;
	return PyBool_FromLong(self->c == NULL);
}

static PyMethodDef client_methods[] = {
	{ "put", (PyCFunction)(void (*)(void))client_put,
	  METH_VARARGS | METH_KEYWORDS, pychange_put_doc },
	{ "delete", (PyCFunction)(void (*)(void))client_delete,
	  METH_VARARGS | METH_KEYWORDS, pychange_delete_doc },
	{ "set_attrs", (PyCFunction)(void (*)(void))client_set_attrs,
	  METH_VARARGS | METH_KEYWORDS, pychange_set_attrs_doc },
	{ "batch", (PyCFunction)client_batch, METH_NOARGS, batch_doc },
	{ "ping", (PyCFunction)client_ping, METH_NOARGS, ping_doc },
	{ "stats", (PyCFunction)client_stats, METH_NOARGS, cstats_doc },
	{ "close", (PyCFunction)client_close, METH_NOARGS, cclose_doc },
	{ "__enter__", (PyCFunction)client_enter, METH_NOARGS,
	  "Return the client itself." },
	{ "__exit__", (PyCFunction)client_exit, METH_VARARGS,
	  "Close the connection." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef client_getset[] = {
	{ "closed", (getter)client_closed, NULL, "True after close().", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

PyDoc_STRVAR(client_doc,
"A connection to shmregd: shmreg.connect(socket=None, registry=None).\n"
"\n"
"put, delete and set_attrs wait for the daemon's answer with the GIL\n"
"released.  A put that returned is visible to every later get of this\n"
"process.  Use a Client from one thread at a time; a forked child that\n"
"uses it connects anew on its first call (the parent's connection, and\n"
"the ephemeral entries put on it, stay the parent's).");

PyTypeObject pyclient_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmreg.Client",
	.tp_basicsize = sizeof(pyclient_t),
	.tp_dealloc = (destructor)client_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = client_doc,
	.tp_methods = client_methods,
	.tp_getset = client_getset,
};

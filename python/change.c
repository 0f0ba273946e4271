/* SPDX-License-Identifier: MIT */
/*
 * change.c - put, delete and set_attrs: the argument handling and error
 * mapping shared by shmreg.Client and shmreg.Writer, which differ only in
 * the C calls behind them (struct pychange_ops).
 */
#include <errno.h>

#include "module.h"

const char pychange_put_doc[] =
"put(key, value, *, ttl=None, attrs=None, parent=None, owner_pid=None,\n"
"    ephemeral=False, expect_rev=None) -> int\n"
"\n"
"Put or replace key (bytes or str) with value (bytes-like or str, UTF-8)\n"
"and return the new revision.\n"
"  ttl         seconds (float) until the entry expires; None: never\n"
"  attrs       dict or iterable of (name, value) pairs (find() looks\n"
"              entries up by them); a put replaces them all\n"
"  parent      key of the parent entry (it must exist: KeyError(parent))\n"
"  owner_pid   remove the entry when this process exits\n"
"                (ProcessLookupError when there is no such process)\n"
"  ephemeral   (Client only) remove the entry when this connection closes\n"
"  expect_rev  compare-and-set: put only if the entry's mod_rev equals\n"
"              it; 0 means only if the key is absent.  A mismatch raises\n"
"              FileExistsError (EEXIST)\n"
"Bad types raise TypeError, sizes and ranges ValueError; other failures\n"
"OSError with the errno.";

const char pychange_delete_doc[] =
"delete(key, recursive=False) -> int\n"
"\n"
"Delete key and return the new revision; with recursive=True delete it\n"
"with all its descendants in one commit and return how many entries went.\n"
"An absent key raises KeyError, like `del d[k]`; an entry with children\n"
"and recursive=False raises OSError(ENOTEMPTY) and nothing changes.";

const char pychange_set_attrs_doc[] =
"set_attrs(key, attrs) -> int\n"
"\n"
"Replace key's attributes (a dict or an iterable of (name, value) pairs;\n"
"empty removes them all), keeping its value, expiry and owner.  Returns\n"
"the new revision; an absent key raises KeyError.";

/* ttl in seconds (> 0) into ns, at most SHMREG_TTL_MAX_NS */
static int ttl_ns(PyObject *o, int64_t *ns)
{
	double s;

	*ns = 0;
	if (!o || o == Py_None)
		return 0;
	if (!PyFloat_Check(o) && !PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "ttl must be a number of seconds "
			     "or None, not %.80s", Py_TYPE(o)->tp_name);
		return -1;
	}
	s = PyFloat_AsDouble(o);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (!(s > 0) || s * 1e9 > (double)SHMREG_TTL_MAX_NS) {
		PyErr_Format(PyExc_ValueError, "ttl must be > 0 and at most "
			     "%lld seconds (None: never expires)",
			     (long long)(SHMREG_TTL_MAX_NS / 1000000000));
		return -1;
	}
	*ns = (int64_t)(s * 1e9);
	if (*ns == 0)
		*ns = 1;   /* under a nanosecond: still an expiry */
	return 0;
}

static int owner(PyObject *o, pid_t *pid)
{
	long v;

	*pid = 0;
	if (!o || o == Py_None)
		return 0;
	if (!PyLong_Check(o)) {
		PyErr_SetString(PyExc_TypeError, "owner_pid must be an int");
		return -1;
	}
	v = PyLong_AsLong(o);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (v <= 0 || v > INT32_MAX) {
		PyErr_SetString(PyExc_ValueError, "owner_pid must be a pid > 0");
		return -1;
	}
	*pid = (pid_t)v;
	return 0;
}

/* expect_rev: None unconditional, 0 only-if-absent, n a revision */
static int expect(PyObject *o, uint64_t *rev)
{
	unsigned long long v;

	*rev = 0;
	if (!o || o == Py_None)
		return 0;
	if (!PyLong_Check(o)) {
		PyErr_SetString(PyExc_TypeError, "expect_rev must be an int");
		return -1;
	}
	v = PyLong_AsUnsignedLongLong(o);
	if ((v == (unsigned long long)-1 && PyErr_Occurred()) ||
	    v == SHMREG_REV_ABSENT) {
		PyErr_Clear();
		PyErr_SetString(PyExc_ValueError,
				"expect_rev must be a revision >= 0");
		return -1;
	}
	*rev = v ? v : SHMREG_REV_ABSENT;
	return 0;
}

PyObject *pychange_put(PyObject *self, const struct pychange_ops *ops,
		       PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "key", "value", "ttl", "attrs", "parent",
				  "owner_pid", "ephemeral", "expect_rev",
				  NULL };
	PyObject *key, *value, *ttl = NULL, *attrs = NULL, *parent = NULL;
	PyObject *pid = NULL, *rev = NULL, *res = NULL;
	pybytes_t k, v, par = { .len = 0 };
	shmreg_put_opts_t o = { 0 };
	int ephemeral = 0;
	pyattrs_t a;
	int64_t ret;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OOOOpO:put", kwlist,
					 &key, &value, &ttl, &attrs, &parent,
					 &pid, &ephemeral, &rev))
		return NULL;
	if (ttl_ns(ttl, &o.ttl_ns) < 0 || owner(pid, &o.owner_pid) < 0 ||
	    expect(rev, &o.expect_rev) < 0 || ops->ready(self) < 0)
		return NULL;
	if (pyarg_key(key, &k) < 0)
		return NULL;
	if (pyarg_value(value, &v) < 0)
		goto out_k;
	if (pyarg_attrs(attrs, &a, "attrs") < 0)
		goto out_v;
	if (parent && parent != Py_None) {
		if (pyarg_key(parent, &par) < 0)
			goto out_a;
		o.parent = par.p;
		o.parent_len = (size_t)par.len;
	}
	o.flags = ephemeral ? SHMREG_EPHEMERAL : 0;
	o.attrs = a.v;
	o.nattrs = a.n;
	ret = ops->put(self, k.p, (size_t)k.len, v.p, (size_t)v.len, &o);
	if (ret >= 0)
		res = PyLong_FromLongLong(ret);
	else if (ret == -ENOENT && o.parent)
		PyErr_SetObject(PyExc_KeyError, parent);
	else
		pyerr_errno(ret, "put");
	if (o.parent)
		pybytes_release(&par);
out_a:
	pyattrs_release(&a);
out_v:
	pybytes_release(&v);
out_k:
	pybytes_release(&k);
	return res;
}

PyObject *pychange_delete(PyObject *self, const struct pychange_ops *ops,
			  PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "key", "recursive", NULL };
	PyObject *key;
	int recursive = 0;
	pybytes_t k;
	int64_t ret;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:delete", kwlist, &key,
					 &recursive) ||
	    ops->ready(self) < 0 || pyarg_key(key, &k) < 0)
		return NULL;
	ret = recursive ? ops->del_tree(self, k.p, (size_t)k.len)
			: ops->del(self, k.p, (size_t)k.len);
	pybytes_release(&k);
	if (ret >= 0)
		return PyLong_FromLongLong(ret);
	if (ret == -ENOTEMPTY) {
		pyerr_errno(ret, "delete (it has children: recursive=True)");
		return NULL;
	}
	return pyerr_key(ret, "delete", key);
}

PyObject *pychange_set_attrs(PyObject *self, const struct pychange_ops *ops,
			     PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "key", "attrs", NULL };
	PyObject *key, *attrs;
	pybytes_t k;
	pyattrs_t a;
	int64_t ret;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:set_attrs", kwlist,
					 &key, &attrs) ||
	    ops->ready(self) < 0 || pyarg_key(key, &k) < 0)
		return NULL;
	if (pyarg_attrs(attrs, &a, "attrs") < 0) {
		pybytes_release(&k);
		return NULL;
	}
	ret = ops->set_attrs(self, k.p, (size_t)k.len, a.v, a.n);
	pyattrs_release(&a);
	pybytes_release(&k);
	if (ret >= 0)
		return PyLong_FromLongLong(ret);
	return pyerr_key(ret, "set_attrs", key);
}

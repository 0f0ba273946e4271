/* SPDX-License-Identifier: MIT */
/* args.c - one copy of each argument rule: keys, values, timeouts, attrs. */
#include <math.h>
#include <string.h>

#include "module.h"

/* bytes (no copy), str (its cached UTF-8, no copy after the first) or any
 * object exporting a contiguous buffer (bytearray, memoryview). */
static int view(PyObject *o, pybytes_t *out, const char *what)
{
	/* the fields pybytes_release reads; the Py_buffer (80 bytes) is
	 * filled only when used: this runs on every get */
	out->has_view = false;
	if (PyBytes_Check(o)) {
		out->p = PyBytes_AS_STRING(o);
		out->len = PyBytes_GET_SIZE(o);
		return 0;
	}
	if (PyUnicode_Check(o)) {
		out->p = PyUnicode_AsUTF8AndSize(o, &out->len);
		return out->p ? 0 : -1;
	}
	if (PyObject_CheckBuffer(o)) {
		if (PyObject_GetBuffer(o, &out->view, PyBUF_SIMPLE) < 0)
			return -1;
		out->has_view = true;
		out->p = out->view.buf;
		out->len = out->view.len;
		return 0;
	}
	PyErr_Format(PyExc_TypeError, "%s must be bytes or str, not %.80s",
		     what, Py_TYPE(o)->tp_name);
	return -1;
}

void pybytes_buffer_release(pybytes_t *b)
{
	PyBuffer_Release(&b->view);
	b->has_view = false;
}

static int sized(PyObject *o, pybytes_t *out, const char *what,
		 Py_ssize_t min, Py_ssize_t max)
{
	if (view(o, out, what) < 0)
		return -1;
	if (out->len >= min && out->len <= max)
		return 0;
	if (out->len < min)
		PyErr_Format(PyExc_ValueError, "%s must not be empty", what);
	else
		PyErr_Format(PyExc_ValueError,
			     "%s of %zd bytes is over the limit of %zd",
			     what, out->len, max);
	pybytes_release(out);
	return -1;
}

int pyarg_key(PyObject *o, pybytes_t *out)
{
	return sized(o, out, "key", 1, SHMREG_KEY_MAX);
}

int pyarg_prefix(PyObject *o, pybytes_t *out)
{
	return sized(o, out, "prefix", 0, SHMREG_KEY_MAX);
}

int pyarg_value(PyObject *o, pybytes_t *out)
{
	return sized(o, out, "value", 0, SHMREG_VALUE_MAX);
}

int pyarg_timeout(PyObject *o, int64_t *ns)
{
	double s;

	if (o == NULL || o == Py_None) {
		*ns = -1;
		return 0;
	}
	if (!PyFloat_Check(o) && !PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError,
			     "timeout must be a number of seconds or None, "
			     "not %.80s", Py_TYPE(o)->tp_name);
		return -1;
	}
	s = PyFloat_AsDouble(o);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (isnan(s) || s < 0) {
		PyErr_SetString(PyExc_ValueError,
				"timeout must be >= 0 seconds (None: forever)");
		return -1;
	}
	/* beyond ~292 years an int64 of ns overflows: that is forever */
	*ns = s >= 9.2e9 ? -1 : (int64_t)(s * 1e9);
	return 0;
}

/* ---- attributes ---- */

/* One name or value as bytes: str is UTF-8 with surrogateescape, so a
 * name read back by attrs() (decoded the same way) round-trips. */
static PyObject *attr_bytes(PyObject *o, const char *what)
{
	if (PyUnicode_Check(o))
		return PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
	if (PyBytes_Check(o)) {
		Py_INCREF(o);
		return o;
	}
	PyErr_Format(PyExc_TypeError, "attribute %s must be str or bytes, "
		     "not %.80s", what, Py_TYPE(o)->tp_name);
	return NULL;
}

static int attr_check(PyObject *b, const char *what, Py_ssize_t max,
		      bool is_name)
{
	const char *p = PyBytes_AS_STRING(b);
	Py_ssize_t n = PyBytes_GET_SIZE(b);

	if (is_name && n == 0) {
		PyErr_SetString(PyExc_ValueError,
				"attribute name must not be empty");
		return -1;
	}
	if (n > max) {
		PyErr_Format(PyExc_ValueError, "attribute %s of %zd bytes is "
			     "over the limit of %zd", what, n, max);
		return -1;
	}
	if (memchr(p, '\0', (size_t)n) || (is_name && memchr(p, '=', (size_t)n))) {
		PyErr_Format(PyExc_ValueError, "attribute %s %R holds %s", what,
			     b, is_name ? "'=' or NUL" : "NUL");
		return -1;
	}
	return 0;
}

/* The pairs of @o as a new list of 2-tuples of bytes, checked. */
static PyObject *attr_pairs(PyObject *o, const char *what)
{
	PyObject *items, *out, *seq;
	Py_ssize_t n;

	items = PyDict_Check(o) ? PyDict_Items(o) : PySequence_List(o);
	if (!items) {
		if (PyErr_ExceptionMatches(PyExc_TypeError)) {
			PyErr_Clear();
			PyErr_Format(PyExc_TypeError, "%s must be a dict or an "
				     "iterable of (name, value) pairs, not "
				     "%.80s", what, Py_TYPE(o)->tp_name);
		}
		return NULL;
	}
	n = PyList_GET_SIZE(items);
	if (n > SHMREG_ATTRS_MAX) {
		PyErr_Format(PyExc_ValueError, "%s: %zd attributes, at most %d",
			     what, n, SHMREG_ATTRS_MAX);
		Py_DECREF(items);
		return NULL;
	}
	out = PyList_New(n);
	for (Py_ssize_t i = 0; out && i < n; i++) {
		PyObject *nm = NULL, *val = NULL;

		seq = PySequence_Fast(PyList_GET_ITEM(items, i),
				      "attributes must be (name, value) pairs");
		if (seq && PySequence_Fast_GET_SIZE(seq) != 2)
			PyErr_SetString(PyExc_ValueError,
					"attributes must be (name, value) pairs");
		else if (seq && (nm = attr_bytes(PySequence_Fast_GET_ITEM(seq, 0),
						 "name")) &&
			 (val = attr_bytes(PySequence_Fast_GET_ITEM(seq, 1),
					   "value")) &&
			 !attr_check(nm, "name", SHMREG_ATTR_NAME_MAX, true) &&
			 !attr_check(val, "value", SHMREG_ATTR_VALUE_MAX, false)) {
			PyList_SET_ITEM(out, i, PyTuple_Pack(2, nm, val));
		}
		Py_XDECREF(seq);
		Py_XDECREF(nm);
		Py_XDECREF(val);
		if (PyErr_Occurred() || !PyList_GET_ITEM(out, i))
			Py_CLEAR(out);
	}
	Py_DECREF(items);
	return out;
}

int pyarg_attrs(PyObject *o, pyattrs_t *a, const char *what)
{
	PyObject *pairs;
	size_t total = 0;
	char *p;

	memset(a, 0, sizeof(*a));
	if (!o || o == Py_None)
		return 0;
	pairs = attr_pairs(o, what);
	if (!pairs)
		return -1;
	a->n = (uint32_t)PyList_GET_SIZE(pairs);
	for (uint32_t i = 0; i < a->n; i++)
		for (int j = 0; j < 2; j++)
			total += (size_t)PyBytes_GET_SIZE(PyTuple_GET_ITEM(
					PyList_GET_ITEM(pairs, i), j)) + 1;
	/* one block for every C string: released in one free */
	a->mem = p = PyMem_Malloc(total ? total : 1);
	if (!p) {
		Py_DECREF(pairs);
		PyErr_NoMemory();
		return -1;
	}
	for (uint32_t i = 0; i < a->n; i++) {
		PyObject *t = PyList_GET_ITEM(pairs, i);

		for (int j = 0; j < 2; j++) {
			PyObject *b = PyTuple_GET_ITEM(t, j);
			size_t n = (size_t)PyBytes_GET_SIZE(b);

			memcpy(p, PyBytes_AS_STRING(b), n + 1);
			if (j == 0)
				a->v[i].name = p;
			else
				a->v[i].value = p;
			p += n + 1;
		}
	}
	Py_DECREF(pairs);
	return 0;
}

void pyattrs_release(pyattrs_t *a)
{
	PyMem_Free(a->mem);
	a->mem = NULL;
	a->n = 0;
}

static PyObject *decode(const char *p, size_t n)
{
	return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "surrogateescape");
}

PyObject *pyattrs_to_list(const char *buf, size_t len)
{
	PyObject *list = PyList_New(0);
	size_t i = 0;

	/* bounded by @len: every step consumes at least two bytes, and a
	 * pair missing its terminators ends the walk (the library returns
	 * whole pairs only, so that is never reached) */
	while (list && i < len) {
		const char *nm = buf + i, *val, *end;
		PyObject *t;

		end = memchr(nm, '\0', len - i);
		if (!end)
			break;
		val = end + 1;
		if ((size_t)(val - buf) >= len)
			break;
		end = memchr(val, '\0', len - (size_t)(val - buf));
		if (!end)
			break;
		t = Py_BuildValue("(NN)", decode(nm, strlen(nm)),
				  decode(val, (size_t)(end - val)));
		if (!t || PyList_Append(list, t) < 0)
			Py_CLEAR(list);
		Py_XDECREF(t);
		i = (size_t)(end - buf) + 1;
	}
	return list;
}

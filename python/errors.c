/* SPDX-License-Identifier: MIT */
/* errors.c - the one mapping from the C API's -errno to Python exceptions. */
#include <errno.h>
#include <string.h>

#include "module.h"

/*
 * The rule: a bad argument (-EINVAL, -E2BIG) is ValueError, as Python
 * raises for a value out of range; everything else is OSError with the
 * errno, which CPython's OSError constructor turns into its subclass
 * (ENOENT FileNotFoundError, EACCES PermissionError, ETIMEDOUT
 * TimeoutError, EEXIST FileExistsError, EAGAIN BlockingIOError, ECONNRESET
 * ConnectionResetError, ESRCH ProcessLookupError, ...), so callers catch
 * the class they already know and still read exc.errno.
 */
PyObject *pyerr_errno(int64_t neg, const char *what)
{
	int e = (int)-neg;
	PyObject *exc;

	if (e == EINVAL || e == E2BIG) {
		PyErr_Format(PyExc_ValueError, "%s: %s", what, strerror(e));
		return NULL;
	}
	exc = PyObject_CallFunction(PyExc_OSError, "is", e, strerror(e));
	if (!exc)
		return NULL;
	/* the message names the call: "put: Connection reset by peer" */
	PyObject *msg = PyUnicode_FromFormat("%s: %s", what, strerror(e));
	if (msg) {
		PyObject_SetAttrString(exc, "strerror", msg);
		Py_DECREF(msg);
	}
	PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
	Py_DECREF(exc);
	return NULL;
}

PyObject *pyerr_key(int64_t neg, const char *what, PyObject *key)
{
	if (neg == -ENOENT) {
		PyErr_SetObject(PyExc_KeyError, key);
		return NULL;
	}
	return pyerr_errno(neg, what);
}

PyObject *pyerr_closed(const char *what)
{
	PyErr_Format(PyExc_ValueError, "operation on a closed %s", what);
	return NULL;
}

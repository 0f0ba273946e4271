/* SPDX-License-Identifier: MIT */
/* module.c - the Python module shmreg: its functions, types and constants. */
#include <pthread.h>

#include "module.h"

unsigned pyfork_generation;

static void forked_child(void)
{
	pyfork_generation++;
}

PyDoc_STRVAR(open_doc,
"open(name) -> shmreg.Registry\n"
"\n"
"Map registry name read-only: a registry name (the file\n"
"$SHMREG_DIR/shmreg.NAME, else /dev/shm/shmreg.NAME) or an absolute path.\n"
"Raises FileNotFoundError when no writer has created it, PermissionError\n"
"when its mode forbids reading, OSError(EPROTO) when the file is not a\n"
"registry (or of another format version), ValueError for a bad name.");

static PyObject *mod_open(PyObject *mod, PyObject *name)
{
	(void)mod;
	return pyreg_open(name);
}

PyDoc_STRVAR(connect_doc,
"connect(socket=None, registry=None) -> shmreg.Client\n"
"\n"
"Connect to the shmregd listening on socket (None: $SHMREG_SOCKET, else\n"
"$XDG_RUNTIME_DIR/shmreg.sock, else /run/shmreg/shmreg.sock) to write\n"
"registry (None: $SHMREG_REGISTRY, else \"default\").  Raises\n"
"FileNotFoundError (no such socket, or the daemon does not serve the\n"
"registry), ConnectionRefusedError, PermissionError.");

static PyMethodDef mod_methods[] = {
	{ "open", mod_open, METH_O, open_doc },
	{ "connect", (PyCFunction)(void (*)(void))pyclient_connect,
	  METH_VARARGS | METH_KEYWORDS, connect_doc },
	{ NULL, NULL, 0, NULL },
};

PyDoc_STRVAR(mod_doc,
"shmreg: a shared-memory registry of key -> value entries.\n"
"\n"
"One writer process owns a registry; any number of processes map it\n"
"read-only and read it without locks, system calls or messages.\n"
"\n"
"    import shmreg\n"
"    r = shmreg.open(\"services\")         # map it (fork-safe)\n"
"    r.get(b\"db/primary\")                # bytes, or None\n"
"    r.wait(\"db/primary\", timeout=5)     # until a writer puts it\n"
"    with shmreg.connect(registry=\"services\") as c:   # via shmregd\n"
"        c.put(\"db/primary\", b\"10.0.0.7:5432\", ttl=30)\n"
"\n"
"Registry (shmreg.open) reads: get, [], in, info, revision, stats, list,\n"
"find, children, attrs, wait, watch.  Client (shmreg.connect) and Writer\n"
"(the embedded writer) write: put, delete, set_attrs; Client.batch()\n"
"applies many changes all or nothing.\n"
"\n"
"Keys are bytes or str (UTF-8), 1..KEY_MAX bytes; values bytes, up to\n"
"VALUE_MAX.  Errors are OSError subclasses carrying the errno\n"
"(FileNotFoundError, PermissionError, TimeoutError, ...), KeyError for\n"
"an absent key where a mapping would raise it, TypeError and ValueError\n"
"for bad arguments.");

static struct PyModuleDef mod_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmreg",
	.m_doc = mod_doc,
	.m_size = -1,
	.m_methods = mod_methods,
};

static int add_type(PyObject *m, PyTypeObject *t, const char *name)
{
	if (PyType_Ready(t) < 0)
		return -1;
	return PyModule_AddObjectRef(m, name, (PyObject *)t);
}

PyMODINIT_FUNC PyInit_shmreg(void);
PyMODINIT_FUNC PyInit_shmreg(void)
{
	PyObject *m = PyModule_Create(&mod_def);

	if (!m)
		return NULL;
	/* once per process (m_size -1: the init runs once) */
	if (pthread_atfork(NULL, NULL, forked_child) != 0) {
		Py_DECREF(m);
		return PyErr_NoMemory();
	}
	if (pyrecords_init() < 0 ||
	    add_type(m, &pyreg_type, "Registry") < 0 ||
	    add_type(m, &pywatch_type, "Watch") < 0 ||
	    add_type(m, &pyclient_type, "Client") < 0 ||
	    add_type(m, &pybatch_type, "Batch") < 0 ||
	    add_type(m, &pywriter_type, "Writer") < 0 ||
	    PyModule_AddObjectRef(m, "Info", (PyObject *)&pyinfo_type) < 0 ||
	    PyModule_AddObjectRef(m, "Event", (PyObject *)&pyevent_type) < 0 ||
	    PyModule_AddIntConstant(m, "KEY_MAX", SHMREG_KEY_MAX) < 0 ||
	    PyModule_AddIntConstant(m, "VALUE_MAX", SHMREG_VALUE_MAX) < 0 ||
	    PyModule_AddIntConstant(m, "ATTRS_MAX", SHMREG_ATTRS_MAX) < 0 ||
	    PyModule_AddIntConstant(m, "ATTR_NAME_MAX",
				    SHMREG_ATTR_NAME_MAX) < 0 ||
	    PyModule_AddIntConstant(m, "ATTR_VALUE_MAX",
				    SHMREG_ATTR_VALUE_MAX) < 0 ||
	    PyModule_AddStringConstant(m, "__version__", SHMREG_PY_VERSION) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}

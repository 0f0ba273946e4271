/* SPDX-License-Identifier: MIT */
/* records.c - shmreg.Info, shmreg.Event and the stats dict. */
#include "module.h"

PyTypeObject pyinfo_type;
PyTypeObject pyevent_type;

static PyStructSequence_Field info_fields[] = {
	{ "mod_rev", "revision of the entry's last put" },
	{ "create_rev", "revision of the put that created the entry" },
	{ "owner_pid", "process whose exit removes the entry, 0 = none" },
	{ "expires_at_ns", "CLOCK_REALTIME deadline in ns (time.time_ns()), "
			   "0 = never" },
	{ "ephemeral", "True when the entry belongs to a client connection" },
	{ "size", "length of the value in bytes" },
	{ NULL, NULL },
};

static PyStructSequence_Desc info_desc = {
	"shmreg.Info",
	"What Registry.info() reports about an entry besides its value.",
	info_fields, 6,
};

static PyStructSequence_Field event_fields[] = {
	{ "rev", "revision of the change" },
	{ "type", "\"put\" or \"delete\"" },
	{ "key", "the key changed (bytes)" },
	{ NULL, NULL },
};

static PyStructSequence_Desc event_desc = {
	"shmreg.Event",
	"One change from a Watch: (rev, type, key), type \"put\" or \"delete\".",
	event_fields, 3,
};

static PyObject *str_put, *str_delete;

int pyrecords_init(void)
{
	if (PyStructSequence_InitType2(&pyinfo_type, &info_desc) < 0 ||
	    PyStructSequence_InitType2(&pyevent_type, &event_desc) < 0)
		return -1;
	str_put = PyUnicode_InternFromString("put");
	str_delete = PyUnicode_InternFromString("delete");
	return str_put && str_delete ? 0 : -1;
}

static PyObject *fill(PyObject *o, int n, PyObject **items)
{
	for (int i = 0; i < n; i++) {
		if (!items[i]) {
			for (int j = i + 1; j < n; j++)
				Py_XDECREF(items[j]);
			Py_XDECREF(o);
			return NULL;
		}
		if (o)
			PyStructSequence_SET_ITEM(o, i, items[i]);
		else
			Py_DECREF(items[i]);
	}
	return o;
}

PyObject *pyinfo_from(const shmreg_info_t *in)
{
	PyObject *items[6] = {
		PyLong_FromUnsignedLongLong(in->mod_rev),
		PyLong_FromUnsignedLongLong(in->create_rev),
		PyLong_FromLong(in->owner_pid),
		PyLong_FromLongLong(in->expires_at_ns),
		PyBool_FromLong(!!(in->flags & SHMREG_EPHEMERAL)),
		PyLong_FromUnsignedLong(in->vlen),
	};

	return fill(PyStructSequence_New(&pyinfo_type), 6, items);
}

PyObject *pyevent_from(const shmreg_event_t *ev)
{
	PyObject *type = ev->type == SHMREG_EVENT_DEL ? str_delete : str_put;
	PyObject *items[3] = {
		PyLong_FromUnsignedLongLong(ev->rev),
		Py_NewRef(type),
		PyBytes_FromStringAndSize(ev->key, (Py_ssize_t)ev->klen),
	};

	return fill(PyStructSequence_New(&pyevent_type), 3, items);
}

static int put_u64(PyObject *d, const char *name, unsigned long long v)
{
	PyObject *o = PyLong_FromUnsignedLongLong(v);
	int ret = o ? PyDict_SetItemString(d, name, o) : -1;

	Py_XDECREF(o);
	return ret;
}

static const char *state_name(int state)
{
	switch (state) {
	case SHMREG_STATE_OPEN: return "open";
	case SHMREG_STATE_CLOSED: return "closed";
	case SHMREG_STATE_DEAD: return "dead";
	default: return "unknown";
	}
}

PyObject *pystats_dict(const shmreg_stats_t *st)
{
	PyObject *d = PyDict_New(), *s;

	if (!d)
		return NULL;
	s = PyUnicode_FromString(state_name(st->state));
	if (!s || PyDict_SetItemString(d, "state", s) < 0 ||
	    put_u64(d, "entries", st->entries) < 0 ||
	    put_u64(d, "bytes_used", st->bytes_used) < 0 ||
	    put_u64(d, "segment_bytes", st->segment_bytes) < 0 ||
	    put_u64(d, "index_capacity", st->index_capacity) < 0 ||
	    put_u64(d, "arena_bytes", st->arena_bytes) < 0 ||
	    put_u64(d, "arena_used", st->arena_used) < 0 ||
	    put_u64(d, "revision", st->revision) < 0 ||
	    put_u64(d, "generation", st->generation) < 0 ||
	    put_u64(d, "ring_capacity", st->ring_capacity) < 0 ||
	    put_u64(d, "writer_pid", (unsigned long long)st->writer_pid) < 0)
		Py_CLEAR(d);
	Py_XDECREF(s);
	return d;
}

/* SPDX-License-Identifier: MIT */
/* metrics.c - shmregd's metrics: request counters and the exposition. */
#include <string.h>

#include "daemon.h"
#include "metrics_text.h"

/*
 * What is exported (docs/operations.md lists each with its meaning):
 *
 *   - the registry families of metrics_text.c, from each registry's
 *     segment, the same that shmregctl stats --prometheus prints;
 *   - per registry, what only the daemon knows: connections, requests by
 *     op and result, errors by errno, owners watched, connection-owned
 *     entries (reg_families below);
 *   - daemon-wide counters (daemon_families) and the HTTP endpoint's own.
 *
 * The persistence work adds its log bytes, fsyncs and fsync latency
 * histogram as rows of reg_families (one emit function each): that table
 * is the one place a per-registry daemon metric is declared.
 *
 * Every loop below is bounded by the registries (D_MAX_REGISTRIES), the
 * connections (--max-connections plus D_REFUSE_MAX), the watched owners
 * or the fixed op and errno tables: a scrape costs what the daemon holds,
 * never what a peer sends.
 */

static struct reg_metrics *metrics_of(struct conn *c)
{
	return c->reg ? &c->reg->m : &c->d->metrics.unbound;
}

void metrics_count(struct conn *c, unsigned op, int status)
{
	struct reg_metrics *m = metrics_of(c);
	unsigned o = op < M_OPS ? op : M_OPS;

	if (status >= 0) {
		m->ok[o]++;
		return;
	}
	m->failed[o]++;
	m->err[(unsigned)-status < M_ERRNOS ? (unsigned)-status : M_ERRNOS]++;
}

/* ---- per-registry daemon families ---- */

static void emit_connections(FILE *f, struct daemon *d, const char *name)
{
	uint64_t n[D_MAX_REGISTRIES] = { 0 };

	for (struct conn *c = d->conns; c; c = c->next)
		if (c->reg && !c->dead && !c->refused)
			n[c->reg->idx]++;
	for (unsigned i = 0; i < d->nreg; i++)
		prom_sample(f, name, d->reg[i].name, NULL, (double)n[i]);
}

static const char *op_label(unsigned op, char *buf, size_t cap)
{
	const char *n = op < M_OPS ? proto_op_name(op) : "other";

	if (strcmp(n, "?") == 0)
		snprintf(buf, cap, "op%u", op);
	else
		snprintf(buf, cap, "%s", n);
	return buf;
}

static void requests_of(FILE *f, const char *name, const char *reg,
			const struct reg_metrics *m, bool all_known)
{
	char labels[64], op[16];

	/* every op this daemon knows, both results, so that a rate over
	 * a series that was 0 exists from the first scrape */
	for (unsigned o = 0; o <= M_OPS; o++) {
		bool known = all_known && o >= 1 && o <= PROTO_OP_LAST;

		/* unknown ops (answered -EOPNOTSUPP) only once seen */
		if (!known && !m->ok[o] && !m->failed[o])
			continue;
		op_label(o, op, sizeof(op));
		snprintf(labels, sizeof(labels), "op=\"%s\",result=\"ok\"", op);
		prom_sample(f, name, reg, labels, (double)m->ok[o]);
		snprintf(labels, sizeof(labels), "op=\"%s\",result=\"error\"",
			 op);
		prom_sample(f, name, reg, labels, (double)m->failed[o]);
	}
}

static void emit_requests(FILE *f, struct daemon *d, const char *name)
{
	for (unsigned i = 0; i < d->nreg; i++)
		requests_of(f, name, d->reg[i].name, &d->reg[i].m, true);
	/* connections that have not (successfully) said HELLO: no
	 * registry label, and only the series seen */
	requests_of(f, name, NULL, &d->metrics.unbound, false);
}

static void errors_of(FILE *f, const char *name, const char *reg,
		      const struct reg_metrics *m)
{
	char labels[48];

	/* only the errnos seen: the list of possible ones is long */
	for (unsigned e = 1; e <= M_ERRNOS; e++) {
		const char *en = e < M_ERRNOS ? strerrorname_np((int)e) : NULL;

		if (!m->err[e])
			continue;
		if (en)
			snprintf(labels, sizeof(labels), "errno=\"%s\"", en);
		else
			snprintf(labels, sizeof(labels), "errno=\"%u\"", e);
		prom_sample(f, name, reg, labels, (double)m->err[e]);
	}
}

static void emit_errors(FILE *f, struct daemon *d, const char *name)
{
	for (unsigned i = 0; i < d->nreg; i++)
		errors_of(f, name, d->reg[i].name, &d->reg[i].m);
	errors_of(f, name, NULL, &d->metrics.unbound);
}

static void emit_owners(FILE *f, struct daemon *d, const char *name)
{
	uint64_t n[D_MAX_REGISTRIES] = { 0 };

	/* bounded by the watched pids (the table's buckets and chains) */
	for (size_t b = 0; d->own_tab && b <= d->own_mask; b++)
		for (struct owner *o = d->own_tab[b]; o; o = o->hnext)
			for (unsigned i = 0; i < d->nreg; i++)
				if (o->regmask >> i & 1u)
					n[i]++;
	for (unsigned i = 0; i < d->nreg; i++)
		prom_sample(f, name, d->reg[i].name, NULL, (double)n[i]);
}

static void emit_ephemeral(FILE *f, struct daemon *d, const char *name)
{
	for (unsigned i = 0; i < d->nreg; i++)
		prom_sample(f, name, d->reg[i].name, NULL,
			    (double)d->reg[i].eph_count);
}

struct d_family {
	const char *name, *type, *help;
	void (*emit)(FILE *f, struct daemon *d, const char *name);
};

/* Per-registry metrics only the daemon knows.  New ones (the persistence
 * log's) are rows here. */
static const struct d_family reg_families[] = {
	{ "shmreg_connections", "gauge",
	  "Open client connections that selected the registry.",
	  emit_connections },
	{ "shmreg_requests_total", "counter",
	  "Requests answered, by operation and result (no registry label: "
	  "before a HELLO selected one).", emit_requests },
	{ "shmreg_errors_total", "counter",
	  "Requests answered with an error, by errno.", emit_errors },
	{ "shmreg_owners_watched", "gauge",
	  "Processes watched because they own entries in the registry.",
	  emit_owners },
	{ "shmreg_ephemeral_entries", "gauge",
	  "Entries owned by a client connection (removed when it closes).",
	  emit_ephemeral },
};

/* ---- daemon-wide counters ---- */

struct d_counter {
	const char *name, *type, *help;
	size_t off;                 /* in struct d_stats */
};

#define ST(field) offsetof(struct d_stats, field)
static const struct d_counter daemon_counters[] = {
	{ "shmreg_daemon_bad_frame_closes_total", "counter",
	  "Connections closed for a malformed frame.", ST(closed_bad) },
	{ "shmreg_daemon_refused_total", "counter",
	  "Connections refused by their peer credentials.", ST(refused) },
	{ "shmreg_daemon_stalled_closes_total", "counter",
	  "Connections closed for not reading their replies.", ST(stalled) },
	{ "shmreg_daemon_idle_closes_total", "counter",
	  "Connections closed by --idle-timeout.", ST(idle_closed) },
	{ "shmreg_daemon_receive_pauses_total", "counter",
	  "Receives paused by reply back-pressure.", ST(pauses) },
	{ "shmreg_daemon_over_budget_total", "counter",
	  "Requests refused by --input-budget.", ST(over_budget) },
	{ "shmreg_daemon_owner_deletes_total", "counter",
	  "Entries removed because their owner process exited.",
	  ST(owner_deletes) },
	{ "shmreg_daemon_reply_queue_highwater_bytes", "gauge",
	  "Most reply bytes ever queued on one connection.",
	  ST(out_highwater) },
};
#undef ST

static void render_daemon(struct daemon *d, FILE *f)
{
	for (size_t k = 0; k < sizeof(daemon_counters) /
				   sizeof(daemon_counters[0]); k++) {
		const struct d_counter *dc = &daemon_counters[k];
		uint64_t v;

		memcpy(&v, (const char *)&d->st + dc->off, sizeof(v));
		prom_family(f, dc->name, dc->type, dc->help);
		prom_sample(f, dc->name, NULL, NULL, (double)v);
	}
	prom_family(f, "shmreg_daemon_input_buffered_bytes", "gauge",
		    "Bytes buffered for partial requests now.");
	prom_sample(f, "shmreg_daemon_input_buffered_bytes", NULL, NULL,
		    (double)d->in_bytes);
	prom_family(f, "shmreg_daemon_metrics_scrapes_total", "counter",
		    "GET /metrics requests answered.");
	prom_sample(f, "shmreg_daemon_metrics_scrapes_total", NULL, NULL,
		    (double)d->metrics.scrapes);
	prom_family(f, "shmreg_daemon_metrics_bad_requests_total", "counter",
		    "HTTP requests on the metrics port refused or timed out.");
	prom_sample(f, "shmreg_daemon_metrics_bad_requests_total", NULL, NULL,
		    (double)d->metrics.http_bad);
}

void metrics_render(struct daemon *d, FILE *f)
{
	static shmreg_stats_t st[D_MAX_REGISTRIES];
	struct prom_reg regs[D_MAX_REGISTRIES];
	unsigned n = 0;

	/* static: 64 stats structs are too big for a comfortable stack
	 * frame, and the loop is single-threaded */
	for (unsigned i = 0; i < d->nreg; i++) {
		if (shmreg_stats(shmreg_writer_reader(d->reg[i].w), &st[n]))
			continue; /* cannot fail for a registry we write */
		regs[n].name = d->reg[i].name;
		regs[n].st = &st[n];
		n++;
	}
	prom_segment_families(f, regs, n);
	for (size_t k = 0; k < sizeof(reg_families) /
				   sizeof(reg_families[0]); k++) {
		const struct d_family *df = &reg_families[k];

		prom_family(f, df->name, df->type, df->help);
		df->emit(f, d, df->name);
	}
	render_daemon(d, f);
}

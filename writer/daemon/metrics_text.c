/* SPDX-License-Identifier: MIT */
/* metrics_text.c - Prometheus text format: registry families from stats. */
#include <math.h>
#include <stddef.h>

#include "metrics_text.h"

/*
 * The format (prometheus.io, "Exposition formats", text 0.0.4): every
 * sample of a family follows that family's HELP and TYPE lines, families
 * never interleave, label values are "quoted" with \\, \" and \n escaped.
 * Names follow the conventions: base units (bytes, seconds), counters end
 * in _total.  shmregd and shmregctl print the registry families from this
 * one table, so a dashboard works with either source.
 */

void prom_family(FILE *f, const char *name, const char *type,
		 const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label(FILE *f, const char *name, const char *v)
{
	fprintf(f, "%s=\"", name);
	/* bounded by the value's length (a registry name: a path at most) */
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
	fputc('"', f);
}

void prom_sample(FILE *f, const char *name, const char *reg,
		 const char *labels, double value)
{
	fputs(name, f);
	if (reg || labels) {
		fputc('{', f);
		if (reg)
			label(f, "registry", reg);
		if (reg && labels)
			fputc(',', f);
		if (labels)
			fputs(labels, f);
		fputc('}', f);
	}
	/* integers exactly up to 2^53 (every counter in practice), beyond
	 * that all the digits a double has; fractions (seconds) to 9 */
	if (value == floor(value) && fabs(value) < 9007199254740992.0)
		fprintf(f, " %.0f\n", value);
	else if (value == floor(value))
		fprintf(f, " %.17g\n", value);
	else
		fprintf(f, " %.9g\n", value);
}

/* A family whose one sample per registry is a field of shmreg_stats_t. */
struct seg_family {
	const char *name, *type, *help;
	double (*get)(const shmreg_stats_t *st);
};

#define FIELD(fn, expr) \
	static double fn(const shmreg_stats_t *st) { return (double)(expr); }
FIELD(g_entries, st->entries)
FIELD(g_revision, st->revision)
FIELD(g_used, st->bytes_used)
FIELD(g_segment, st->segment_bytes)
FIELD(g_slots, st->index_capacity)
FIELD(g_arena, st->arena_bytes)
FIELD(g_arena_used, st->arena_used)
FIELD(g_handoffs, st->generation ? st->generation - 1 : 0)
FIELD(g_ring, st->ring_capacity)
FIELD(g_pairs, st->attr_pairs)
FIELD(g_attr_slots, st->attr_capacity)
FIELD(g_postings, st->index_entries)
FIELD(g_owned, st->owned)
FIELD(g_waiters, st->waiters)
FIELD(g_uptime, st->uptime_ns / 1e9)
FIELD(g_pid, st->writer_pid)
#undef FIELD

static const struct seg_family seg_families[] = {
	{ "shmreg_entries", "gauge", "Live entries.", g_entries },
	/* a gauge: it is an identifier (what a client waits for), which
	 * happens never to decrease; its deriv() is commits per second */
	{ "shmreg_revision", "gauge",
	  "Last committed revision (one per commit, never decreasing).",
	  g_revision },
	{ "shmreg_used_bytes", "gauge",
	  "Key and value bytes of the live entries.", g_used },
	{ "shmreg_segment_bytes", "gauge", "Size of the segment file.",
	  g_segment },
	{ "shmreg_index_slots", "gauge",
	  "Index slots (capacity: the writer grows at 3/4 full).", g_slots },
	{ "shmreg_arena_bytes", "gauge",
	  "Arena size for out-of-line entries.", g_arena },
	{ "shmreg_arena_used_bytes", "gauge",
	  "Arena bytes handed out, free lists included.", g_arena_used },
	{ "shmreg_segment_handoffs_total", "counter",
	  "Segment handoffs (growth or truncation) since the registry was "
	  "created.", g_handoffs },
	{ "shmreg_ring_events", "gauge", "Change-ring capacity in events.",
	  g_ring },
	{ "shmreg_attr_pairs", "gauge",
	  "Distinct name=value pairs in the attribute index.", g_pairs },
	{ "shmreg_attr_index_slots", "gauge", "Attribute index slots.",
	  g_attr_slots },
	{ "shmreg_attr_index_entries", "gauge",
	  "Attribute index postings (one per entry and pair it carries).",
	  g_postings },
	{ "shmreg_owned_entries", "gauge",
	  "Live entries bound to an owner process.", g_owned },
	{ "shmreg_waiters", "gauge",
	  "Threads blocked in await or watch (a hint: a waiter killed while "
	  "blocked stays counted).", g_waiters },
	{ "shmreg_writer_uptime_seconds", "gauge",
	  "Time since the writer opened the registry.", g_uptime },
	{ "shmreg_writer_pid", "gauge", "Process id of the writer.", g_pid },
};

static const char *const state_labels[] = {
	"state=\"open\"", "state=\"closed\"", "state=\"dead\""
};

void prom_segment_families(FILE *f, const struct prom_reg *regs, unsigned n)
{
	size_t k;

	for (k = 0; k < sizeof(seg_families) / sizeof(seg_families[0]); k++) {
		const struct seg_family *sf = &seg_families[k];

		prom_family(f, sf->name, sf->type, sf->help);
		for (unsigned i = 0; i < n; i++)
			prom_sample(f, sf->name, regs[i].name, NULL,
				    sf->get(regs[i].st));
	}
	/* an enumeration: one series per state, 1 for the current one */
	prom_family(f, "shmreg_writer_state", "gauge",
		    "1 for the registry's state: open (a writer serves it), "
		    "closed, dead (its writer died).");
	for (unsigned i = 0; i < n; i++)
		for (k = 0; k < 3; k++)
			prom_sample(f, "shmreg_writer_state", regs[i].name,
				    state_labels[k],
				    regs[i].st->state == (int)k + 1);
}

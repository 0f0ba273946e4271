/* SPDX-License-Identifier: MIT */
/*
 * metrics_text.h - the Prometheus text exposition format (version 0.0.4):
 * the writer of HELP/TYPE lines and samples, and the registry families
 * read from a segment's stats.  Shared by shmregd (GET /metrics) and
 * shmregctl stats --prometheus, so both print the same names.
 */
#ifndef SHMREG_METRICS_TEXT_H
#define SHMREG_METRICS_TEXT_H

#include <stdint.h>
#include <stdio.h>

#include "shmreg.h"

/* The Content-Type of the format. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP NAME HELP\n# TYPE NAME TYPE\n" (@type: "counter", "gauge"). */
void prom_family(FILE *f, const char *name, const char *type,
		 const char *help);
/* One sample: NAME{registry="REG"[,LABELS]} VALUE\n.  @reg may be NULL
 * (no registry label: a daemon-wide series); it is escaped as the format
 * asks (backslash, double quote, newline).  @labels (NULL: none) is
 * written as given: `op="put",result="ok"`, made by the caller of names
 * and values that need no escaping. */
void prom_sample(FILE *f, const char *name, const char *reg,
		 const char *labels, double value);

/* One registry's stats, under its name. */
struct prom_reg {
	const char *name;
	const shmreg_stats_t *st;
};

/* Every family read from the segment (entries, revision, bytes, capacity,
 * handoffs, index, owners, waiters, writer state), one sample per
 * registry in each. */
void prom_segment_families(FILE *f, const struct prom_reg *regs, unsigned n);

#endif /* SHMREG_METRICS_TEXT_H */

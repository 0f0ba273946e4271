/* SPDX-License-Identifier: MIT */
/* cmd_stats.c - shmregctl stats: the registry's counters, once or live. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "ctl.h"
#include "metrics_text.h"

static const char *state_name(int state)
{
	switch (state) {
	case SHMREG_STATE_OPEN:   return "open";
	case SHMREG_STATE_CLOSED: return "closed";
	case SHMREG_STATE_DEAD:   return "dead";
	}
	return "unknown";
}

int ctl_read_stats(struct ctl *c, shmreg_stats_t *st)
{
	shmreg_t *r;
	int ret;

	ret = ctl_open(c, &r);
	if (ret)
		return ret;
	ret = shmreg_stats(r, st);
	shmreg_close(r);
	return ret < 0 ? ctl_fail(c->registry, -ret) : 0;
}

/* The counters printed as they are, in the order of the text table (the
 * JSON object has the same names in the same order). */
#define STAT_COUNTERS(X)                                                    \
	X(revision) X(entries) X(bytes_used) X(segment_bytes)               \
	X(index_capacity) X(arena_bytes) X(arena_used) X(generation)        \
	X(ring_capacity) X(attr_pairs) X(attr_capacity) X(index_entries)    \
	X(owned) X(waiters)

static void print_json(const struct ctl *c, const shmreg_stats_t *st)
{
	fputc('{', stdout);
	json_bytes_member(stdout, "registry", c->registry,
			  strlen(c->registry));
	printf(",\"state\":\"%s\",\"writer_pid\":%d,\"uptime_s\":%.3f"
	       ",\"writes_per_sec\":%.3f", state_name(st->state),
	       (int)st->writer_pid, (double)st->uptime_ns / 1e9,
	       st->writes_per_sec);
#define X(f) printf(",\"" #f "\":%" PRIu64, st->f);
	STAT_COUNTERS(X)
#undef X
	fputs("}\n", stdout);
}

static void print_text(const struct ctl *c, const shmreg_stats_t *st)
{
	printf("%-15s ", "registry");
	human_bytes(stdout, c->registry, strlen(c->registry));
	printf("\n%-15s %s\n", "state", state_name(st->state));
	printf("%-15s %d\n", "writer_pid", (int)st->writer_pid);
	printf("%-15s %.3f s\n", "uptime", (double)st->uptime_ns / 1e9);
	printf("%-15s %.3f\n", "writes_per_sec", st->writes_per_sec);
#define X(f) printf("%-15s %" PRIu64 "\n", #f, st->f);
	STAT_COUNTERS(X)
#undef X
}

/*
 * --watch: a sample every interval, on an absolute CLOCK_MONOTONIC
 * schedule (no drift however long a refresh takes), each line with the
 * counters and the rates since the previous sample: writes/s is the
 * revisions committed between the two samples over the time between them
 * (the first line shows the writer's own rate, shmreg_stats'
 * writes_per_sec).  Bounded by --count, else it runs until a signal.
 */
struct sample {
	shmreg_stats_t st;
	int64_t mono_ns, real_ns;
};

static void watch_line(const struct ctl *c, const struct sample *prev,
		       const struct sample *s, uint64_t n)
{
	double dt = prev ? (double)(s->mono_ns - prev->mono_ns) / 1e9 : 0;
	uint64_t writes = prev && s->st.revision >= prev->st.revision
				  ? s->st.revision - prev->st.revision : 0;
	double wps = prev ? (dt > 0 ? (double)writes / dt : 0)
			  : s->st.writes_per_sec;
	int64_t dentries = prev ? (int64_t)(s->st.entries -
					    prev->st.entries) : 0;

	if (c->json) {
		printf("{\"time_ns\":%" PRId64 ",\"interval_s\":%.6f"
		       ",\"revision\":%" PRIu64 ",\"writes\":%" PRIu64
		       ",\"writes_per_sec\":%.3f,\"entries\":%" PRIu64
		       ",\"entries_delta\":%" PRId64 ",\"bytes_used\":%" PRIu64
		       ",\"waiters\":%" PRIu64 ",\"generation\":%" PRIu64
		       ",\"state\":\"%s\"}\n", s->real_ns, dt, s->st.revision,
		       writes, wps, s->st.entries, dentries, s->st.bytes_used,
		       s->st.waiters, s->st.generation,
		       state_name(s->st.state));
		return;
	}
	if (n % 20 == 0)
		printf("%-8s %12s %10s %12s %10s %9s %12s %7s %4s\n", "time",
		       "revision", "writes", "writes/s", "entries", "delta",
		       "bytes_used", "waiters", "gen");
	{
		time_t t = (time_t)(s->real_ns / 1000000000);
		struct tm tm;
		char hms[16];

		localtime_r(&t, &tm);
		strftime(hms, sizeof(hms), "%H:%M:%S", &tm);
		printf("%-8s %12" PRIu64 " %10" PRIu64 " %12.1f %10" PRIu64
		       " %+9" PRId64 " %12" PRIu64 " %7" PRIu64 " %4" PRIu64
		       "\n", hms, s->st.revision, writes, wps, s->st.entries,
		       dentries, s->st.bytes_used, s->st.waiters,
		       s->st.generation);
	}
}

static int watch(struct ctl *c)
{
	struct sample s[2];
	struct timespec next;
	int64_t due;
	shmreg_t *r;
	int ret;

	ret = ctl_open(c, &r);
	if (ret)
		return ret;
	due = shm_monotonic_ns();
	for (uint64_t n = 0; !c->count || n < c->count; n++) {
		struct sample *cur = &s[n & 1], *prev = n ? &s[~n & 1] : NULL;

		if (n) {
			due += c->watch_ns;
			next.tv_sec = (time_t)(due / 1000000000);
			next.tv_nsec = (long)(due % 1000000000);
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
					       &next, NULL) == EINTR)
				;
		}
		ret = shmreg_stats(r, &cur->st);
		cur->mono_ns = shm_monotonic_ns();
		cur->real_ns = shm_realtime_ns();
		if (ret < 0) {
			shmreg_close(r);
			return ctl_fail(c->registry, -ret);
		}
		watch_line(c, prev, cur, n);
		/* a pipe is block-buffered: the reader wants each line now */
		if (fflush(stdout) != 0)
			break;
	}
	shmreg_close(r);
	return ctl_flush(CTL_OK);
}

int cmd_stats(struct ctl *c)
{
	shmreg_stats_t st;
	int ret;

	if ((c->given & OPT_COUNT) && !(c->given & OPT_WATCH))
		return ctl_usage("--count needs --watch");
	if ((c->given & OPT_PROMETHEUS) && (c->given & OPT_WATCH))
		return ctl_usage("--prometheus and --watch do not go together");
	if ((c->given & OPT_PROMETHEUS) && c->json)
		return ctl_usage("--prometheus and --json do not go together");
	if (c->given & OPT_WATCH)
		return watch(c);
	ret = ctl_read_stats(c, &st);
	if (ret)
		return ret;
	if (c->given & OPT_PROMETHEUS) {
		struct prom_reg pr = { .name = c->registry, .st = &st };

		prom_segment_families(stdout, &pr, 1);
	} else if (c->json) {
		print_json(c, &st);
	} else {
		print_text(c, &st);
	}
	return ctl_flush(CTL_OK);
}

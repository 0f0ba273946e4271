/* SPDX-License-Identifier: MIT */
/* cmd_stats.c - shmregctl stats: the registry's counters. */
#include <inttypes.h>
#include <string.h>

#include "ctl.h"

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

int cmd_stats(struct ctl *c)
{
	shmreg_stats_t st;
	int ret = ctl_read_stats(c, &st);

	if (ret)
		return ret;
	if (c->json) {
		fputc('{', stdout);
		json_bytes_member(stdout, "registry", c->registry,
				  strlen(c->registry));
		printf(",\"state\":\"%s\",\"writer_pid\":%d,"
		       "\"revision\":%" PRIu64 ",\"entries\":%" PRIu64
		       ",\"bytes_used\":%" PRIu64 ",\"segment_bytes\":%" PRIu64
		       ",\"index_capacity\":%" PRIu64 ",\"arena_bytes\":%" PRIu64
		       ",\"arena_used\":%" PRIu64 ",\"generation\":%" PRIu64
		       ",\"ring_capacity\":%" PRIu64 "}\n",
		       state_name(st.state), (int)st.writer_pid, st.revision,
		       st.entries, st.bytes_used, st.segment_bytes,
		       st.index_capacity, st.arena_bytes, st.arena_used,
		       st.generation, st.ring_capacity);
		return CTL_OK;
	}
	printf("registry        ");
	human_bytes(stdout, c->registry, strlen(c->registry));
	printf("\nstate           %s\n", state_name(st.state));
	printf("writer_pid      %d\n", (int)st.writer_pid);
	printf("revision        %" PRIu64 "\n", st.revision);
	printf("entries         %" PRIu64 "\n", st.entries);
	printf("bytes_used      %" PRIu64 "\n", st.bytes_used);
	printf("segment_bytes   %" PRIu64 "\n", st.segment_bytes);
	printf("index_capacity  %" PRIu64 "\n", st.index_capacity);
	printf("arena_bytes     %" PRIu64 "\n", st.arena_bytes);
	printf("arena_used      %" PRIu64 "\n", st.arena_used);
	printf("generation      %" PRIu64 "\n", st.generation);
	printf("ring_capacity   %" PRIu64 "\n", st.ring_capacity);
	return CTL_OK;
}

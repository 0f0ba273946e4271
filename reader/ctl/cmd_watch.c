/* SPDX-License-Identifier: MIT */
/* cmd_watch.c - shmregctl watch [PREFIX]: print changes until interrupted. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "validate.h"

/*
 * shmreg_watch_next() resumes an interrupted wait with the time left, so a
 * signal alone never ends it; waiting in slices of this length bounds how
 * long SIGINT/SIGTERM take to end the watch.  An idle watch wakes 4 times a
 * second, which costs nothing measurable.
 */
#define WATCH_SLICE_NS (250 * 1000 * 1000)

/*
 * An event carries the key, not the value: the value printed is read from
 * the registry now.  When the key's mod_rev is still the event's revision
 * that is exactly the value put; when it has been replaced or deleted
 * since, the put's value is gone, and the line says so instead.
 */
static void print_event(struct ctl *c, shmreg_t *r, const shmreg_event_t *ev)
{
	const char *type = ev->type == SHMREG_EVENT_PUT ? "put" :
			   ev->type == SHMREG_EVENT_DEL ? "del" : "unknown";
	shmreg_info_t info;
	char *val = NULL;
	ssize_t n = -ENOENT;
	bool current;

	if (ev->type == SHMREG_EVENT_PUT)
		n = ctl_get_alloc(r, ev->key, ev->klen, &val, &info);
	current = n >= 0 && info.mod_rev == ev->rev;
	if (c->json) {
		printf("{\"rev\":%" PRIu64 ",\"type\":\"%s\",", ev->rev, type);
		json_bytes_member(stdout, "key", ev->key, ev->klen);
		if (ev->type == SHMREG_EVENT_PUT && current) {
			fputc(',', stdout);
			json_bytes_member(stdout, "value", val, (size_t)n);
		} else if (ev->type == SHMREG_EVENT_PUT && n >= 0) {
			printf(",\"superseded_by\":%" PRIu64, info.mod_rev);
		} else if (ev->type == SHMREG_EVENT_PUT) {
			fputs(",\"superseded_by\":null", stdout);
		}
		fputs("}\n", stdout);
	} else {
		printf("%" PRIu64 "\t%s\t", ev->rev, type);
		human_bytes(stdout, ev->key, ev->klen);
		if (ev->type == SHMREG_EVENT_PUT && current) {
			fputc('\t', stdout);
			human_bytes(stdout, val, (size_t)n);
		} else if (ev->type == SHMREG_EVENT_PUT && n >= 0) {
			printf("\t(replaced at rev %" PRIu64 ")", info.mod_rev);
		} else if (ev->type == SHMREG_EVENT_PUT) {
			fputs("\t(deleted since)", stdout);
		}
		fputc('\n', stdout);
	}
	free(val);
}

static int too_old(uint64_t from, shmreg_t *r)
{
	return ctl_say(CTL_ERROR, "watch: the change ring no longer holds the "
		       "changes after revision %" PRIu64 "; list the registry "
		       "and watch with --since %" PRIu64, from,
		       shmreg_revision(r));
}

int cmd_watch(struct ctl *c)
{
	const char *prefix = c->argc ? c->argv[0] : "";
	size_t plen = strlen(prefix);
	shmreg_watch_t *w = NULL;
	struct ctl_reg reg;
	shmreg_event_t ev;
	uint64_t last;
	bool noted = false;
	int ret;

	if (shm_check_prefix(prefix, plen) < 0)
		return ctl_usage("a prefix is at most %u bytes", SHMREG_KEY_MAX);
	ret = ctl_reg_open(c, &reg);
	if (ret)
		return ret;
	ctl_catch_signals();
	/* Without --since: only what happens from now on, which for a
	 * registry that does not exist yet is everything. */
	last = (c->given & OPT_SINCE) ? c->since_rev :
	       reg.r ? shmreg_revision(reg.r) : 0;

	/*
	 * Each round prints an event, or waits: in watch_next (a slice at a
	 * time, for signals) or, when the registry has no writer (closed,
	 * dead, not created yet), in ctl_reg_wait() for the next one.  Bounded
	 * by SIGINT/SIGTERM.  @last is the revision of the last event
	 * printed: across writers the stream goes on from it, because a new
	 * segment starts with a copy of the old change ring and the library
	 * returns -ESHUTDOWN/-EOWNERDEAD only after every event committed
	 * before the close or the death (reader/watch.c).
	 */
	while (!ctl_stopping()) {
		if (!w) {
			if (!reg.r || ret == -ESHUTDOWN ||
			    ret == -EOWNERDEAD) {
				ret = ctl_reg_wait(&reg, -1, true);
				if (ret == -EINTR)
					break;
			}
			ret = shmreg_watch_open(reg.r, prefix, plen, last, &w);
			if (ret == -ERANGE) {
				ret = too_old(last, reg.r);
				goto out;
			}
			if (ret < 0) {
				ret = ctl_fail("watch", -ret);
				goto out;
			}
		}
		ret = shmreg_watch_next(w, &ev, WATCH_SLICE_NS);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret == -ESHUTDOWN || ret == -EOWNERDEAD) {
			if (ret == -EOWNERDEAD && !noted) {
				noted = true;
				fprintf(stderr, "shmregctl: note: the writer of "
					"registry %s died; waiting for a new "
					"one\n", c->registry);
			}
			shmreg_watch_close(w);
			w = NULL;
			continue;
		}
		if (ret == -ERANGE) {
			ret = ctl_say(CTL_ERROR, "watch fell behind the change "
				      "ring and lost the changes after "
				      "revision %" PRIu64 "; list the registry "
				      "and watch with --since %" PRIu64, last,
				      shmreg_revision(reg.r));
			goto out;
		}
		if (ret < 0) {
			ret = ctl_fail("watch", -ret);
			goto out;
		}
		last = ev.rev;
		print_event(c, reg.r, &ev);
		/* one event, one line, now: a script reads them as they
		 * come; a closed pipe or a full disk ends the watch */
		if (ctl_flush(CTL_OK) != CTL_OK || ctl_output_failed()) {
			ret = ctl_flush(CTL_OK);
			goto out;
		}
	}
	/* SIGINT or SIGTERM: the normal end, reported as a shell reports a
	 * process the signal killed (the same as await) */
	ret = ctl_stop_status();
out:
	shmreg_watch_close(w);
	ctl_reg_close(&reg);
	return ret;
}

/* SPDX-License-Identifier: MIT */
/*
 * persist_daemon.h - helpers of the persistence tests that run shmregd:
 * its log counters through STATS, and its log file read back.
 */
#ifndef TESTS_PERSIST_DAEMON_H
#define TESTS_PERSIST_DAEMON_H

#include <stdint.h>

#include "daemon_harness.h"

/* STATS field @f (PROTO_STAT_*) of registry @reg, through the wire
 * protocol (the log counters are not in shmreg_daemon_stats_t). */
uint64_t pd_stat(struct dh *h, const char *reg, unsigned f);

/* A reader of the daemon's current log, DIR/NAME/log.SEQ (the newest):
 * pd_log_scan() parses the whole records appended since the last call
 * (one being written, failing its checksum, and the zeros the log is
 * allocated ahead with, end the scan) and calls @fn with each one's key. */
struct pd_log {
	int fd;
	uint64_t off;           /* next record */
	uint64_t records;
};
void pd_log_open(struct pd_log *l, const char *dir, const char *name);
void pd_log_scan(struct pd_log *l, void (*fn)(const uint8_t *key,
					      uint32_t klen, void *arg),
		 void *arg);
void pd_log_close(struct pd_log *l);

#endif /* TESTS_PERSIST_DAEMON_H */

/* SPDX-License-Identifier: MIT */
/*
 * shmreg_mirror.h - the writer's entry points for shmregd's etcd mirror:
 * commit changes at revisions the caller gives (how it works: revision.c).
 * Not part of libshmreg_writer's API: revision.c is compiled into shmregd
 * (from the same tree, so struct shmreg_writer is the library's own) and
 * the library only honours the fields it sets (internal.h).
 *
 *	shmreg_writer_mirror_begin(w, rev, many);   // rev > current revision
 *	shmreg_writer_mirror_slot(w, mod, create);  // optional, per put
 *	shmreg_writer_put(...) / _del(...) ...      // every change is @rev
 *	shmreg_writer_mirror_end(w, rev);
 */
#ifndef SHMREG_MIRROR_H
#define SHMREG_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "shmreg_writer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The next change is revision @rev; with @many every change until
 * mirror_end is (several changes at one revision: the ring record says
 * so).  Revisions between the current one and @rev are committed first
 * as revisions that changed nothing.  Returns 0, -EINVAL (NULL, or
 * already begun) or -ERANGE (@rev not above the current revision, or
 * too large). */
int shmreg_writer_mirror_begin(shmreg_writer_t *w, uint64_t rev, bool many);

/* The next puts store @mod_rev and @create_rev in their slots instead of
 * the commit revision (0, 0: the commit revision again).  Returns 0 or
 * -EINVAL (create_rev > mod_rev, or only one of them 0). */
int shmreg_writer_mirror_slot(shmreg_writer_t *w, uint64_t mod_rev,
			      uint64_t create_rev);

/* End what mirror_begin began: when nothing was committed at @rev, a
 * revision that changed nothing is.  Returns 0, or -ERANGE when the
 * registry's revision is not @rev afterwards (a change failed to commit
 * after another did not: the caller resyncs). */
int shmreg_writer_mirror_end(shmreg_writer_t *w, uint64_t rev);

#ifdef __cplusplus
}
#endif

#endif /* SHMREG_MIRROR_H */

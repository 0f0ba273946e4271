/* SPDX-License-Identifier: MIT */
/* notify.c - the writer's side of await/watch: wake waiters after commits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "futex.h"
#include "membarrier.h"
#include "notify.h"
#include "paths.h"
#include "wait_layout.h"

/*
 * How it works.
 *
 * The wait file (shm/wait_layout.h) holds one {word, waiters} slot per group
 * of keys and a global slot for change-stream watchers.  A reader that must
 * block registers in the slot (waiters + 1), re-checks the segment, marks
 * the word "someone sleeps" (bit 0, a CAS from the value it re-checked
 * under) and sleeps on it with FUTEX_WAIT.  After every committed change
 * the writer, in notify_key(), looks at the key's slot and at the global
 * slot and, for each whose waiters count is non-zero, adds 2 to the word
 * while clearing bit 0, and calls FUTEX_WAKE if bit 0 was set.  With nobody
 * waiting a commit costs one fence and two loads: no store to the wait file
 * and no system call; with waiters that are awake (busy with the previous
 * wake-up), one RMW and still no system call.
 *
 * The lost-wake-up argument (Dekker's pattern with two seq_cst fences):
 *
 *   writer (commit, then notify_key)      reader (reader/waitfile.c)
 *   --------------------------------      ---------------------------
 *   slot/ring stores, revision (release)  waiters += 1        (seq_cst)
 *   fence(seq_cst)              (Fw)      fence(seq_cst)             (Fr)
 *   n = load(waiters)                     w = load(word)       (acquire)
 *   if (n) {                              re-check the segment
 *     old = word; word = (old+2) & ~1     CAS(word, w, w | 1), else again
 *           (one RMW, release)            FUTEX_WAIT(word, w | 1)
 *     if (old & 1) FUTEX_WAKE(word) }
 *
 * The two fences are totally ordered.  If Fw comes first, every load the
 * reader makes after Fr (its re-check) sees the commit, and it does not
 * sleep.  If Fr comes first, the writer's load of waiters sees the reader's
 * increment (or a later value, which other waiters' decrements cannot bring
 * to 0 while this reader is registered), so the writer's RMW bumps the
 * word.  The RMWs on the word (the writer's bump, the reader's CAS) are
 * totally ordered too:
 *  - the reader loaded the bumped word: acquire, pairing with the release
 *    RMW, so its re-check sees the commit;
 *  - it loaded an older word and its CAS comes after the bump: the CAS
 *    fails (the word moved) and it re-checks instead of sleeping;
 *  - its CAS came before the bump: the bump read bit 0 set and the writer
 *    calls FUTEX_WAKE, which either finds it asleep or, if it has not yet
 *    slept, makes its FUTEX_WAIT find the word changed and return at once.
 * Either way no reader sleeps through a commit it was waiting for.  The
 * reader stays registered across its whole wait loop, so the argument
 * holds for every later commit too.
 *
 * The file is untrusted input here: readers map it read-write.  The writer
 * compares counts with 0 and nothing else, bumps words with a CAS loop of
 * at most 8 tries, and indexes slots by the hash's top bits alone; a
 * scribbled count or word costs a spare FUTEX_WAKE or a missed one
 * (bounded by the waiters' time slice), never anything worse.  Who may
 * write the file at all is decided by its mode, which is the segment's: a
 * process that may write it could as well write (or truncate) the segment,
 * so the wait file grants no power the registry's file mode did not.
 */


/* Is the identity line what this version writes?  It is compared, never
 * used: a reader may have scribbled on it. */
static int notify_identity_ok(const struct shm_wait_hdr *h)
{
	return h->magic == SHM_WAIT_MAGIC && h->version == SHM_WAIT_VERSION &&
	       h->slot_bits == SHM_WAIT_SLOT_BITS &&
	       h->slots_off == SHM_WAIT_HDR_SIZE &&
	       h->file_size == SHM_WAIT_FILE_SIZE;
}

/* Write the identity line (into the mapped file, or into a header about
 * to be written to a new one), magic last (release) so that a reader that
 * checks magic with an acquire load sees the rest. */
static void notify_write_identity(struct shm_wait_hdr *h)
{
	h->version = SHM_WAIT_VERSION;
	h->slot_bits = SHM_WAIT_SLOT_BITS;
	h->slots_off = SHM_WAIT_HDR_SIZE;
	h->file_size = SHM_WAIT_FILE_SIZE;
	h->created_ns = shm_realtime_ns();
	atomic_store_explicit(&h->magic, SHM_WAIT_MAGIC, memory_order_release);
}

/* Reserve the whole file's pages: a hole in a mapped file is filled when
 * touched, and on a full tmpfs that is a SIGBUS in the writer instead of
 * -ENOSPC here.  Also fills the holes of a file an older version sized
 * with ftruncate, and grows a short one (never shrinks: readers may map
 * past our size).  0 or -errno. */
static int notify_reserve(int fd)
{
	int rc = posix_fallocate(fd, 0, SHM_WAIT_FILE_SIZE);

	if (rc == EOPNOTSUPP || rc == ENOSYS || rc == EINVAL)
		rc = ftruncate(fd, SHM_WAIT_FILE_SIZE) < 0 ? errno : 0;
	return -rc;
}

/* Give the anonymous file @fd the name @path: with AT_EMPTY_PATH where we
 * may (CAP_DAC_READ_SEARCH), else through /proc/self/fd.  0 or -errno
 * (-EEXIST: something is at the name already; never replaced). */
static int notify_link(int fd, const char *path)
{
	char proc[64];

	if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno == EEXIST)
		return -EEXIST;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0 ?
		       -errno : 0;
}

/*
 * Create the wait file whole: an unnamed file (O_TMPFILE) in the same
 * directory is sized, given its identity and mode, then linked to @path,
 * so a reader never sees a short or half-written wait file of ours, a
 * writer killed meanwhile leaves nothing behind, and link() never
 * replaces (nor follows) whatever another user may have put at the name.
 * Without O_TMPFILE, a randomly named file created with O_EXCL
 * (mkostemp) stands in.  Returns an fd open read-write on @path, or
 * -errno (-EEXIST: someone else's is there).
 */
static int notify_create_as(const char *path, mode_t mode, bool anon)
{
	char tmp[PATH_MAX];
	struct shm_wait_hdr h;
	char *slash;
	int fd, ret = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	if (anon) {
		slash = strrchr(tmp, '/');
		if (slash == tmp)
			strcpy(tmp, "/");
		else if (slash)
			*slash = 0;
		else
			strcpy(tmp, ".");
		fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		tmp[0] = 0; /* nothing to unlink */
	} else {
		fd = mkostemp(tmp, O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	memset(&h, 0, sizeof(h));
	notify_write_identity(&h);
	/* the mode is set exactly (fchmod ignores the umask), as the
	 * segment's is: it decides who can register as a waiter */
	ret = notify_reserve(fd);
	if (!ret && (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
		     fchmod(fd, mode) < 0))
		ret = -errno;
	if (!ret)
		ret = tmp[0] ? (link(tmp, path) < 0 ? -errno : 0)
			     : notify_link(fd, path);
	if (tmp[0])
		unlink(tmp);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

static int notify_create(const char *path, mode_t mode)
{
	int fd = notify_create_as(path, mode, true);

	/* no O_TMPFILE on this file system, or no way to link one (no
	 * CAP_DAC_READ_SEARCH and no /proc): a named temporary file */
	if (fd < 0 && fd != -EEXIST && fd != -ENOSPC && fd != -ENAMETOOLONG)
		fd = notify_create_as(path, mode, false);
	return fd;
}

int notify_open(struct notify **out, const char *segment_path, mode_t mode)
{
	char path[PATH_MAX];
	struct notify *n;
	struct stat st;
	void *base;
	int fd = -1, ret, tries;

	if (!out || !segment_path)
		return -EINVAL;
	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s.wait", segment_path) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	if (!mode)
		mode = 0644;

	/* Open the existing file (it outlives writers: waiters registered
	 * before a restart stay registered), else create it.  Two rounds
	 * cover a file that appears or vanishes between the two calls;
	 * nobody else creates it while we hold the writer lock, so more
	 * would be a bug, not a race to retry. */
	for (tries = 0; tries < 2; tries++) {
		fd = shm_open_file(path, O_RDWR, 0, false, &st);
		if (fd != -ENOENT)
			break;
		fd = notify_create(path, mode & 07777);
		if (fd != -EEXIST)
			break;
	}
	if (fd == -EEXIST || fd == -ENOENT) {
		/* made and removed again between each of our calls: only a
		 * process racing us on purpose does that */
		fprintf(stderr, "shmreg: refusing %s: someone keeps creating "
			"and removing it\n", path);
		return -EPERM;
	}
	if (fd >= 0 && fstat(fd, &st) < 0) {
		ret = -errno;
		goto fail_fd;
	}
	/* A reader may have made the wait file (they may write the
	 * directory): adopt only the writer's own, and give it this
	 * open's mode (the last open's may have been wider). */
	ret = shm_writer_may_adopt(path, &st, fd < 0 ? fd : 0);
	if (ret < 0)
		goto fail_fd;
	if (fchmod(fd, mode & 07777) < 0) {
		ret = -errno;
		goto fail_fd;
	}
	ret = notify_reserve(fd);
	if (ret < 0)
		goto fail_fd;
	base = mmap(NULL, SHM_WAIT_FILE_SIZE, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		ret = -errno;
		goto fail_fd;
	}
	close(fd);
	n = calloc(1, sizeof(*n));
	if (!n) {
		munmap(base, SHM_WAIT_FILE_SIZE);
		return -ENOMEM;
	}
	n->asym = shm_membarrier_register();
	n->base = base;
	n->hdr = base;
	n->slots = shm_wait_slots(base);
	/* a scribbled identity line makes readers fall back to polling;
	 * restore it (the words and counts stay as they are) */
	if (!notify_identity_ok(n->hdr))
		notify_write_identity(n->hdr);
	*out = n;
	return 0;

fail_fd:
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * Bump the word of a slot that has waiters, and wake them if one sleeps.
 * The RMW adds 2 (the sequence) and clears SHM_WAIT_SLEEPING; it reads the
 * latest value in the word's modification order, so a waiter whose CAS set
 * the bit before it is woken, and a waiter whose CAS comes after it fails
 * (the word moved) and re-checks instead of sleeping.  Release: pairs with
 * the waiter's acquire load of the word, so a waiter that sees the new
 * value sees the commit.  @force: wake even if no bit is set (close and
 * handoff: a reader that scribbled the bit away still hears of them).
 */
void notify_wake(struct shm_wait_slot *s, bool force)
{
	uint32_t old = atomic_load_explicit(&s->word, memory_order_relaxed);
	uint32_t new;
	int tries = 0;

	/* Bounded: waiters only set bit 0, once per sleep, so the CAS
	 * rarely fails; a process scribbling on the word could make it fail
	 * forever, so after 8 tries store, and wake as if someone slept. */
	do {
		new = (old + 2) & ~SHM_WAIT_SLEEPING;
		if (++tries > 8) {
			atomic_store_explicit(&s->word, new,
					      memory_order_release);
			force = true;
			break;
		}
	} while (!atomic_compare_exchange_weak_explicit(
		&s->word, &old, new, memory_order_release,
		memory_order_relaxed));
	/* errors (-EFAULT cannot happen on our own mapping) are ignored: a
	 * waiter that missed this wake re-checks at its slice's end */
	if (force || (old & SHM_WAIT_SLEEPING))
		(void)shm_futex_wake(&s->word, INT_MAX);
}


void notify_all(struct notify *n)
{
	if (!n)
		return;
	/* Fw again, this time after the state store (closed or retired)
	 * that the waiters must see; same pairing as in notify_key().
	 * Bounded: SHM_WAIT_SLOTS + 1 loads, a wake per occupied slot. */
	atomic_thread_fence(memory_order_seq_cst);
	for (uint32_t i = 0; i < SHM_WAIT_SLOTS; i++)
		if (atomic_load_explicit(&n->slots[i].waiters,
					 memory_order_relaxed))
			notify_wake(&n->slots[i], true);
	if (atomic_load_explicit(&n->hdr->global.waiters, memory_order_relaxed))
		notify_wake(&n->hdr->global, true);
}

void notify_close(struct notify *n)
{
	if (!n)
		return;
	notify_all(n);
	munmap(n->base, SHM_WAIT_FILE_SIZE);
	free(n);
}

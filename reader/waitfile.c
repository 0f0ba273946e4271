/* SPDX-License-Identifier: MIT */
/* waitfile.c - map the wait file, register as a waiter, sleep in slices. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "hash.h"
#include "layout.h"
#include "liveness.h"
#include "paths.h"
#include "wait_layout.h"
#include "waitfile.h"

/*
 * How it works.
 *
 * Mapping.  A registry's wait file is mapped once per process and kept in
 * a list shared by every handle on that registry (the handle itself holds
 * no wait state, so a handle made before fork() needs no fix-up in the
 * child, whose copy of the list and of the MAP_SHARED mapping just work).
 * The list is append-only and lock-free: lookups walk it with acquire
 * loads, a new entry is pushed with a release CAS, and nothing is ever
 * removed or unmapped before the process exits (an entry may be in use by
 * any thread, and at 132 KiB per wait file ever used, keeping it is cheaper
 * than knowing when it is unused).  Entries are keyed by the file's device
 * and inode, looked up with one stat() per blocking wait, so a wait file
 * removed and made anew (a registry deleted and recreated) is mapped anew
 * instead of waiting on words no writer bumps any more.
 *
 * A reader that may not open the file read-write (its mode is the
 * segment's: see writer/notify.c) maps it read-only: it can still sleep on
 * the words, but cannot add itself to a waiters count, so the writer only
 * wakes it by chance (when a registered waiter shares its slot); it wakes
 * itself every WAIT_POLL_NS instead.  With no usable wait file at all
 * (none yet, a foreign one) it sleeps WAIT_POLL_NS between checks.
 *
 * Waiting (the reader half of the argument in writer/notify.c):
 *
 *   waiters += 1                 (seq_cst RMW)
 *   fence(seq_cst)               (Fr: pairs with Fw in notify_key/notify_all)
 *   loop:
 *     seen = load(word, acquire) (pairs with the writer's release RMW)
 *     re-check the segment       (check(): the key, the ring, the state)
 *     CAS(word, seen, seen | SHM_WAIT_SLEEPING), or re-check if it moved
 *     FUTEX_WAIT(word, seen | SHM_WAIT_SLEEPING, slice)
 *   waiters -= 1
 *
 * The count goes up once, before the first re-check that follows Fr, and
 * comes down only after the last one, so every commit whose Fw follows Fr
 * in the seq_cst order finds it non-zero and bumps the word; every commit
 * whose Fw precedes Fr is seen by the first re-check.  The word is loaded
 * before each re-check and the sleeping bit is set by a CAS from exactly
 * that value, so a bump that the re-check might have missed either fails
 * the CAS (re-check at once) or sees the bit and wakes us.
 *
 * Time slices.  Each FUTEX_WAIT is bounded by the caller's deadline and by
 * the next liveness check, due WAIT_SLICE_NS (100 ms) after the previous
 * one: a writer that dies without closing wakes nobody, so waiters must
 * ask (wait_writer_dead(): a lock test, no signal to the writer).  The
 * same slice bounds what a scribbled count can cost a waiter.  EINTR (a
 * signal handler ran) re-enters the loop, which recomputes the remaining
 * time from the absolute deadline, so interrupted waits resume with the
 * time that remains.
 */

struct waitfile {
	struct waitfile *next;         /* older entry; immutable once pushed */
	dev_t dev;
	ino_t ino;
	bool writable;                 /* mapped read-write: may register */
	uint8_t *base;                 /* SHM_WAIT_FILE_SIZE bytes */
	struct shm_wait_hdr *hdr;
	struct shm_wait_slot *slots;
};

static _Atomic(struct waitfile *) waitfile_list;
static _Atomic uint64_t waitfile_wakeups;
/* WAIT_SLICE_NS unless a test changed it (waitfile_debug_set_slice) */
static _Atomic int64_t wait_slice_ns = WAIT_SLICE_NS;

/* Compare the identity line with this version's constants: nothing read
 * from the file is used, only compared (a reader may have scribbled). */
static bool waitfile_identity_ok(const struct shm_wait_hdr *h)
{
	/* pairs with the writer's release store of magic, which it makes
	 * after the rest of the line (writer/notify.c) */
	if (atomic_load_explicit(&h->magic, memory_order_acquire) !=
	    SHM_WAIT_MAGIC)
		return false;
	return h->version == SHM_WAIT_VERSION &&
	       h->slot_bits == SHM_WAIT_SLOT_BITS &&
	       h->slots_off == SHM_WAIT_HDR_SIZE &&
	       h->file_size == SHM_WAIT_FILE_SIZE;
}

/* Map the wait file at @path (read-write if allowed, else read-only), or
 * NULL when there is none we can use. */
static struct waitfile *waitfile_map(const char *path)
{
	struct waitfile *wf;
	struct stat st;
	bool writable = true;
	void *base;
	int fd;

	/* never blocks (O_NONBLOCK: a FIFO at the name), never follows a
	 * link there (O_NOFOLLOW) */
	fd = shm_open_file(path, O_RDWR, 0, false, &st);
	if (fd == -EACCES || fd == -EPERM || fd == -EROFS) {
		writable = false;
		fd = shm_open_file(path, O_RDONLY, 0, false, &st);
	}
	if (fd < 0)
		return NULL;
	/* a file shorter than ours would fault (SIGBUS) past its end */
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)SHM_WAIT_FILE_SIZE) {
		close(fd);
		return NULL;
	}
	base = mmap(NULL, SHM_WAIT_FILE_SIZE,
		    writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
		    fd, 0);
	close(fd);
	if (base == MAP_FAILED)
		return NULL;
	wf = calloc(1, sizeof(*wf));
	if (!wf || !waitfile_identity_ok(base)) {
		free(wf);
		munmap(base, SHM_WAIT_FILE_SIZE);
		return NULL;
	}
	wf->dev = st.st_dev;
	wf->ino = st.st_ino;
	wf->writable = writable;
	wf->base = base;
	wf->hdr = base;
	wf->slots = shm_wait_slots(base);
	return wf;
}

/* The wait file of @r as mapped in this process, or NULL (poll). */
static struct waitfile *waitfile_get(shmreg_t *r)
{
	char path[PATH_MAX];
	struct waitfile *wf, *head;
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s.wait", r->path) >=
	    sizeof(path))
		return NULL;
	if (stat(path, &st) < 0)
		return NULL;
	/* pairs with the release CAS below: an entry found is initialised */
	head = atomic_load_explicit(&waitfile_list, memory_order_acquire);
	/* bounded by the number of wait files this process ever mapped */
	for (wf = head; wf; wf = wf->next)
		if (wf->dev == st.st_dev && wf->ino == st.st_ino)
			return wf;
	wf = waitfile_map(path);
	if (!wf)
		return NULL;
	/* Another thread may push the same file meanwhile: both entries
	 * map the same inode, so either serves; the loser's stays listed
	 * (still correct, and there is no safe moment to unmap it). */
	do {
		wf->next = head;
	} while (!atomic_compare_exchange_weak_explicit(
		&waitfile_list, &head, wf, memory_order_release,
		memory_order_acquire));
	return wf;
}

/* The slot a wait on @key (NULL: the change stream) sleeps on. */
static struct shm_wait_slot *waitfile_slot(struct waitfile *wf,
					   const void *key, size_t klen)
{
	if (!key)
		return &wf->hdr->global;
	return &wf->slots[shm_wait_slot_of(shm_hash(key, klen))];
}

/*
 * The registry's state as far as a waiter is concerned, without system
 * calls: 0 to go on waiting, or -ESHUTDOWN.  reader_map() follows a retired
 * segment first, so "retired" is seen here only when the handle may not
 * follow (SHMREG_OPEN_NOFOLLOW: that segment will never change again) or
 * following failed for now (then the next slice tries again).
 */
static int wait_state(shmreg_t *r)
{
	struct shm_map *m = reader_map(r);
	uint32_t st;

	/* pairs with the writer's release store of state (close, retire) */
	st = atomic_load_explicit(&m->hdr->state, memory_order_acquire);
	if (st == SHM_STATE_CLOSED)
		return -ESHUTDOWN;
	if (st == SHM_STATE_RETIRED && (r->flags & SHMREG_OPEN_NOFOLLOW))
		return -ESHUTDOWN;
	return 0;
}

/*
 * Has the writer died?  (wait_state() has just seen the segment neither
 * closed nor retired-for-good.)  Asks the lock file: no writer holds it,
 * or it is gone (-ENOENT: no writer can hold it).  Any other failure to
 * ask (-EMFILE, -ENOMEM, ...) is not evidence of a death: the waiter goes
 * on and asks again after the next slice.
 */
static bool wait_writer_dead(shmreg_t *r)
{
	return shm_writer_gone(r->path);
}

static void wait_sleep(const _Atomic uint32_t *word, uint32_t seen,
		       int64_t ns)
{
	struct timespec ts;
	int ret;

	if (!word) {
		ts.tv_sec = (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		/* EINTR: the caller's loop recomputes what remains */
		nanosleep(&ts, NULL);
		return;
	}
	ret = shm_futex_wait(word, seen, ns);
	if (ret == 0 || ret == -EAGAIN)
		atomic_fetch_add_explicit(&waitfile_wakeups, 1,
					  memory_order_relaxed);
}

/*
 * Say "asleep" (SHM_WAIT_SLEEPING) in the very word value *@seen that the
 * re-check ran under.  False when the word moved since: the caller then
 * re-checks at once instead of sleeping (and it counts as a wake-up).
 * Relaxed is enough: the CAS only has to be ordered against the writer's
 * RMW on the same word, which the word's modification order does; what
 * the re-check saw is covered by the acquire load of *@seen before it.
 */
static bool wait_mark_asleep(struct shm_wait_slot *slot, uint32_t *seen)
{
	uint32_t mark = *seen | SHM_WAIT_SLEEPING;

	if (*seen & SHM_WAIT_SLEEPING)
		return true; /* another waiter of this slot said it already */
	if (!atomic_compare_exchange_strong_explicit(&slot->word, seen, mark,
						     memory_order_relaxed,
						     memory_order_relaxed)) {
		atomic_fetch_add_explicit(&waitfile_wakeups, 1,
					  memory_order_relaxed);
		return false;
	}
	*seen = mark;
	return true;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

ssize_t wait_until(shmreg_t *r, const void *key, size_t klen,
		   int64_t timeout_ns, wait_check_fn check, void *arg)
{
	struct shm_wait_slot *slot = NULL;
	_Atomic uint32_t *count = NULL;
	struct waitfile *wf;
	int64_t now, deadline, live_at, live_slice, slice;
	uint32_t seen = 0;
	ssize_t res;

	/* fast path: no clock, no stat, no store to the wait file */
	if (check(r, arg, &res))
		return res;
	res = wait_state(r);
	if (res)
		return res;
	if (timeout_ns == 0)
		return -ETIMEDOUT;

	now = shm_monotonic_ns();
	deadline = timeout_ns < 0 || timeout_ns > INT64_MAX - now ?
			   INT64_MAX : now + timeout_ns;
	live_at = now;
	wf = waitfile_get(r);
	if (wf) {
		slot = waitfile_slot(wf, key, klen);
		if (wf->writable) {
			count = &slot->waiters;
			atomic_fetch_add_explicit(count, 1,
						  memory_order_seq_cst);
		}
	}
	live_slice = atomic_load_explicit(&wait_slice_ns, memory_order_relaxed);
	slice = count ? live_slice : WAIT_POLL_NS;
	/* Fr: orders the count increment before the loads of the re-check
	 * (and of the word); pairs with Fw in notify_key()/notify_all() */
	atomic_thread_fence(memory_order_seq_cst);
	/* Hr: the full barrier that a writer registered for membarrier does
	 * not execute itself after its commits (Lw in notify_key(); the
	 * argument is in shm/membarrier.h).  Refused, a commit racing with
	 * the first re-check might not wake us: sleep in short slices. */
	if (count && !shm_membarrier_heavy())
		slice = WAIT_POLL_NS;

	/* Each round either returns or sleeps until a wake-up, the deadline
	 * or the next liveness check: bounded by the caller's timeout (and,
	 * with none, by the writer's life, checked every WAIT_SLICE_NS). */
	for (;;) {
		if (slot)
			/* pairs with the release RMW in notify_wake() */
			seen = atomic_load_explicit(&slot->word,
						    memory_order_acquire);
		if (check(r, arg, &res))
			break;
		res = wait_state(r);
		if (res)
			break;
		now = shm_monotonic_ns();
		if (now - live_at >= live_slice) {
			live_at = now;
			if (wait_writer_dead(r)) {
				res = -EOWNERDEAD;
				break;
			}
		}
		if (now >= deadline) {
			res = -ETIMEDOUT;
			break;
		}
		if (count && !wait_mark_asleep(slot, &seen))
			continue; /* the word moved: re-check at once */
		wait_sleep(slot ? &slot->word : NULL, seen,
			   min64(min64(deadline - now, slice),
				 live_at + live_slice - now));
	}
	if (count)
		atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
	return res;
}

/* Sum the waiter counts, skipping pages that are not resident: nobody
 * registered there (a registration writes the page), and reading a tmpfs
 * hole would allocate it.  Bounded by SHM_WAIT_SLOTS, a compile-time
 * constant; each count is a u32, so the sum cannot overflow. */
uint64_t waitfile_count_waiters(shmreg_t *r)
{
	enum { PAGE = 4096, NPAGES = SHM_WAIT_FILE_SIZE / PAGE };
	const uint32_t per_page = PAGE / SHM_WAIT_SLOT_SIZE;
	struct waitfile *wf = waitfile_get(r);
	unsigned char vec[NPAGES];
	uint64_t n;

	_Static_assert(SHM_WAIT_FILE_SIZE % PAGE == 0 &&
		       SHM_WAIT_HDR_SIZE == PAGE, "wait file in whole pages");
	if (!wf)
		return 0;
	if (mincore(wf->base, SHM_WAIT_FILE_SIZE, vec) < 0)
		memset(vec, 1, sizeof(vec)); /* cannot tell: read them all */
	n = atomic_load_explicit(&wf->hdr->global.waiters,
				 memory_order_relaxed);
	for (uint32_t pg = 1; pg < NPAGES; pg++) {
		if (!(vec[pg] & 1))
			continue;
		for (uint32_t i = (pg - 1) * per_page; i < pg * per_page; i++)
			n += atomic_load_explicit(&wf->slots[i].waiters,
						  memory_order_relaxed);
	}
	return n;
}

#ifdef SHMREG_TEST_HOOKS
uint64_t waitfile_debug_wakeups(void)
{
	return atomic_load_explicit(&waitfile_wakeups, memory_order_relaxed);
}

void waitfile_debug_set_slice(int64_t ns)
{
	atomic_store_explicit(&wait_slice_ns, ns > 0 ? ns : WAIT_SLICE_NS,
			      memory_order_relaxed);
}

int waitfile_debug_mode(shmreg_t *r)
{
	struct waitfile *wf = r ? waitfile_get(r) : NULL;

	return !wf ? 0 : wf->writable ? 2 : 1;
}
#endif /* SHMREG_TEST_HOOKS */

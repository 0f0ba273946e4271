/* SPDX-License-Identifier: MIT */
/*
 * segment.c - the writer's files: the lock file, and segment files created
 * at a temporary name and renamed over the registry's name when complete.
 *
 * A segment is never truncated or shrunk once it may be mapped: a reader
 * touching a page past the end of a file gets SIGBUS.  Space is reserved
 * with fallocate() when the file is created, so running out of tmpfs shows
 * up here as -ENOSPC instead of as a SIGBUS in the writer later.
 *
 * The directory is shared (/dev/shm is world-writable and sticky), so
 * whatever is found at a name may have been put there by another user:
 * every file is created with O_EXCL and opened with O_NOFOLLOW and
 * O_NONBLOCK, and an existing one is adopted only if it is a regular file
 * of the writer's euid with one link (shm_writer_may_adopt), else the
 * open fails with -EPERM.  Its mode is then set again, so a mode given at
 * this open replaces the one of the last.  Modes: the lock file 0600 (a
 * process that can open it can take a read lock that keeps every writer
 * out), the segment and the wait file the writer's mode.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "liveness.h"
#include "paths.h"
#include "prepare.h"
#include "seqcount.h"

#define LOCK_MODE 0600

/* Tries at a lock file that keeps being replaced between our open and our
 * lock, and at a fresh random temporary name: either needs another
 * process racing us on purpose (or very bad luck) to fail even once. */
#define NAME_TRIES 8

/* Open or create the lock file at @path, vetted; the fd or -errno. */
static int lock_open(const char *path, struct stat *st)
{
	int fd, rc;

	for (int i = 0; i < NAME_TRIES; i++) {
		fd = shm_open_file(path, O_RDWR | O_CREAT | O_EXCL, LOCK_MODE,
				   false, st);
		if (fd == -EEXIST)
			fd = shm_open_file(path, O_RDWR, 0, false, st);
		if (fd == -ENOENT)
			continue; /* removed between the two opens */
		if (fd < 0 && fd != -ELOOP)
			return fd;
		rc = shm_writer_may_adopt(path, st, fd < 0 ? fd : 0);
		if (rc < 0) {
			if (fd >= 0)
				close(fd);
			return rc;
		}
		/* exact (fchmod ignores the umask), and again on every open:
		 * a lock file of an older version may be 0644 */
		if (fchmod(fd, LOCK_MODE) < 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
		return fd;
	}
	return -EBUSY;
}

/*
 * Vet the segment at the registry's name before anything maps it: adopt
 * only the writer's own (-EPERM otherwise), give it this open's mode, and
 * refuse (-EBUSY) one whose writer still runs although we got the lock:
 * the lock file it locked was removed or replaced under it (the header
 * records which file that was), and two writers must never serve one
 * registry.  The header is read with pread: a file someone truncated
 * cannot fault here.
 */
static int segment_vet(struct shmreg_writer *w, const struct stat *lock)
{
	struct shm_hdr h;
	struct stat st;
	int fd, rc;

	fd = shm_open_file(w->path, O_RDONLY, 0, false, &st);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0 && fd != -ELOOP)
		return fd;
	rc = shm_writer_may_adopt(w->path, &st, fd < 0 ? fd : 0);
	if (rc < 0)
		goto out;
	if (fchmod(fd, w->mode & 07777) < 0) {
		rc = -errno;
		goto out;
	}
	if (pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    h.magic == SHM_MAGIC &&
	    atomic_load_explicit(&h.state, memory_order_relaxed) ==
		    SHM_STATE_OPEN &&
	    h.lock_ino &&
	    (h.lock_dev != (uint64_t)lock->st_dev ||
	     h.lock_ino != (uint64_t)lock->st_ino) &&
	    shm_pid_test(h.writer_pid, h.writer_start) == SHM_PID_ALIVE) {
		fprintf(stderr, "shmreg: %s: its writer (pid %d) still runs, "
			"but its lock file was removed or replaced; stop that "
			"writer first\n", w->path, (int)h.writer_pid);
		rc = -EBUSY;
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * Remove what writers of this registry killed in the middle of a handoff
 * left: SEGMENT.new.PID[.RANDOM] files (each as large as a segment).
 * Under the writer lock, so no live writer of this registry is using one.
 * Only a regular file of our euid with one link, and never one that has a
 * lock file beside it: that is a registry of its own (a name like
 * "NAME.new.12" is a valid registry name too).  Best effort: whatever
 * cannot be removed stays, and nothing fails because of it.
 */
static void segment_sweep(struct shmreg_writer *w)
{
	char dir[PATH_MAX], prefix[PATH_MAX], lock[PATH_MAX + 8];
	const char *slash = strrchr(w->path, '/');
	struct dirent *de;
	size_t plen;
	DIR *d;
	int dfd;

	if (!slash || (size_t)(slash - w->path) >= sizeof(dir))
		return;
	memcpy(dir, w->path, (size_t)(slash - w->path));
	dir[slash - w->path] = 0;
	if (!dir[0])
		strcpy(dir, "/");
	plen = (size_t)snprintf(prefix, sizeof(prefix), "%s.new.", slash + 1);
	if (plen >= sizeof(prefix))
		return;
	d = opendir(dir);
	if (!d)
		return;
	dfd = dirfd(d);
	/* bounded by the directory's entries */
	while ((de = readdir(d))) {
		const char *p = de->d_name + plen;
		struct stat st;
		size_t digits;

		if (strncmp(de->d_name, prefix, plen))
			continue;
		/* PID, then optionally .HEX: what segment_create makes */
		digits = strspn(p, "0123456789");
		if (!digits || (p[digits] && (p[digits] != '.' ||
		    !p[digits + 1] ||
		    strspn(p + digits + 1, "0123456789abcdef") !=
			    strlen(p + digits + 1))))
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
		    st.st_nlink != 1)
			continue;
		if ((size_t)snprintf(lock, sizeof(lock), "%s.lock",
				     de->d_name) >= sizeof(lock) ||
		    faccessat(dfd, lock, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		(void)unlinkat(dfd, de->d_name, 0);
	}
	closedir(d);
}

int segment_lock(struct shmreg_writer *w)
{
	char path[PATH_MAX + 8];
	struct flock fl;
	struct stat st, now;
	int fd = -1, rc, i;

	rc = shm_lock_path(path, sizeof(path), w->path);
	if (rc < 0)
		return -EINVAL;
	for (i = 0; i < NAME_TRIES; i++) {
		fd = lock_open(path, &st);
		if (fd < 0)
			return fd;
		/* An open-file-description lock: owned by this open file, so
		 * a second shmreg_writer_open in the same process conflicts
		 * too (a POSIX record lock would not), and released by the
		 * kernel when the process dies, however it dies. */
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
			rc = (errno == EAGAIN || errno == EACCES) ? -EBUSY
								  : -errno;
			close(fd);
			return rc;
		}
		/* Still the file at the name?  If it was replaced between
		 * our open and our lock, another writer may lock the new
		 * one: only the file at the name excludes writers. */
		if (lstat(path, &now) == 0 && now.st_dev == st.st_dev &&
		    now.st_ino == st.st_ino)
			break;
		close(fd);
	}
	if (i == NAME_TRIES)
		return -EBUSY;
	rc = segment_vet(w, &st);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	w->lock_fd = fd;
	segment_sweep(w);
	return 0;
}

/*
 * Create the file a handoff builds: SEGMENT.new.PID.RANDOM, created with
 * O_EXCL, so that nobody can have it open or linked elsewhere, and with a
 * name nobody can guess, so that nobody can plant a file there to make
 * growth fail (in a sticky directory the writer could not remove it).  A
 * collision (a planted name guessed after all) picks another; after
 * NAME_TRIES of them growth fails with -EIO, never with -EEXIST (which
 * means a compare-and-set mismatch to callers of put).
 */
static int temp_create(const char *path, mode_t mode, char *tmp_path,
		       size_t tmp_cap)
{
	uint64_t rnd;
	int fd, n;

	for (int i = 0; i < NAME_TRIES; i++) {
		if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(rnd)) {
			struct timespec ts;

			/* no entropy yet (early boot): unique enough with
			 * O_EXCL behind it, just guessable */
			clock_gettime(CLOCK_MONOTONIC, &ts);
			rnd = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^
			      (uint64_t)ts.tv_sec ^ (uint64_t)i;
		}
		n = snprintf(tmp_path, tmp_cap, "%s.new.%d.%016llx", path,
			     (int)getpid(), (unsigned long long)rnd);
		if (n < 0 || (size_t)n >= tmp_cap)
			return -EINVAL;
		fd = open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
					    O_CLOEXEC | O_NOCTTY,
			  mode & 07777);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	tmp_path[0] = 0;
	return -EIO;
}

void segment_claim(struct shmreg_writer *w, struct shm_hdr *h)
{
	struct stat lock;

	h->writer_pid = getpid();
	h->writer_start = shm_proc_start(0, NULL);
	/* the first claim starts the uptime; a handoff's new segment
	 * carries it on */
	if (!w->since_ns)
		w->since_ns = shm_realtime_ns();
	atomic_store_explicit(&h->writer_since_ns, w->since_ns,
			      memory_order_relaxed);
	/* which lock file is ours: a reader finding another one at the name
	 * knows it tells nothing about us (shm/liveness.h) */
	h->lock_dev = h->lock_ino = 0;
	if (w->lock_fd >= 0 && fstat(w->lock_fd, &lock) == 0) {
		h->lock_dev = (uint64_t)lock.st_dev;
		h->lock_ino = (uint64_t)lock.st_ino;
	}
}

int segment_make_file(const char *path, mode_t mode,
		      const struct shm_geom *g, size_t populate, int *fd_out,
		      void **base_out, char *tmp_path, size_t tmp_cap)
{
	void *base;
	int fd, rc;

	fd = temp_create(path, mode, tmp_path, tmp_cap);
	if (fd < 0)
		return fd;
	/* exact: fchmod ignores the umask */
	if (fchmod(fd, mode & 07777) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = posix_fallocate(fd, 0, (off_t)g->segment_size);
	if (rc == EOPNOTSUPP || rc == ENOSYS || rc == EINVAL)
		rc = ftruncate(fd, (off_t)g->segment_size) < 0 ? errno : 0;
	if (rc) {
		rc = -rc;
		goto fail;
	}
	base = mmap(NULL, g->segment_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	/* The writer's RW mapping must not be inherited by forked children
	 * (pre-fork workers read through libshmreg, read-only). */
	(void)madvise(base, g->segment_size, MADV_DONTFORK);
	/* The space is reserved (fallocate) either way; without
	 * MADV_POPULATE_WRITE (Linux < 5.14) everything faults in on first
	 * touch. */
	if (populate)
		(void)madvise(base, populate, MADV_POPULATE_WRITE);
	*fd_out = fd;
	*base_out = base;
	return 0;
fail:
	close(fd);
	unlink(tmp_path);
	return rc;
}

int segment_create(struct shmreg_writer *w, const struct shm_geom *g,
		   uint64_t generation, int *fd_out, struct shm_map *m,
		   char *tmp_path, size_t tmp_cap)
{
	struct shm_hdr *h;
	void *base;
	int fd, rc;

	/* made ahead of need by the writer's helper thread (prepare.c)? */
	rc = prep_take(w, g, &fd, &base, tmp_path, tmp_cap);
	/* Else now.  Map the header and the index in one call (the copy and
	 * every put touch the index at random; a fault per page would cost
	 * more); the change ring and the arena are written front to back and
	 * fault in as they fill: a small registry's handoff does not pay for
	 * the 6 MiB ring it has barely used. */
	if (rc < 0)
		rc = segment_make_file(w->path, w->mode, g, g->ring_off, &fd,
				       &base, tmp_path, tmp_cap);
	if (rc < 0)
		return rc;
	memset(m, 0, sizeof(*m));
	m->base = base;
	m->size = g->segment_size;
	m->hdr = base;
	m->g = *g;
	m->generation = generation;
	m->writer_pid = getpid();

	h = m->hdr;
	h->version = SHM_VERSION;
	h->header_size = SHM_HEADER_SIZE;
	atomic_init(&h->state, SHM_STATE_OPEN);
	h->slot_size = SHM_SLOT_SIZE;
	h->segment_size = g->segment_size;
	h->index_off = g->index_off;
	h->index_cap = g->index_cap;
	h->ring_off = g->ring_off;
	h->ring_events = (uint32_t)g->ring_events;
	h->ring_key_bytes = (uint32_t)g->ring_key_bytes;
	h->attr_off = g->attr_off;
	h->attr_cap = g->attr_cap;
	h->arena_off = g->arena_off;
	h->arena_size = g->arena_size;
	h->generation = generation;
	segment_claim(w, h);
	h->created_ns = shm_realtime_ns();
	*fd_out = fd;
	return 0;
}

int segment_publish(struct shmreg_writer *w, struct shm_map *m,
		    const char *tmp_path)
{
	/* The magic goes last, with release: a reader that maps the file
	 * after the rename sees a complete header and contents (the rename
	 * itself orders nothing for a reader that already has it mapped, but
	 * nobody can have mapped it before it had a name). */
	atomic_store_explicit((_Atomic uint64_t *)&m->hdr->magic, SHM_MAGIC,
			      memory_order_release);
	if (rename(tmp_path, w->path) < 0) {
		int rc = -errno;

		unlink(tmp_path);
		return rc;
	}
	return 0;
}

void segment_unmap(struct shm_map *m)
{
	if (m->base)
		munmap(m->base, m->size);
	memset(m, 0, sizeof(*m));
}

int segment_map_existing(const char *path, int *fd_out, struct shm_map *m)
{
	struct stat st;
	void *base;
	int fd, rc;

	fd = shm_open_file(path, O_RDWR, 0, false, &st);
	if (fd == -ENOENT)
		return fd;
	/* segment_lock vetted the file at the name already; this is the
	 * open that counts (the file may have been replaced since) */
	rc = shm_writer_may_adopt(path, &st, fd < 0 ? fd : 0);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (st.st_size < (off_t)SHM_HEADER_SIZE) {
		close(fd);
		return -EPROTO;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		close(fd);
		return rc;
	}
	memset(m, 0, sizeof(*m));
	m->base = base;
	m->size = (size_t)st.st_size;
	m->hdr = base;
	rc = shm_geom_check(base, m->size, &m->g);
	if (rc < 0) {
		segment_unmap(m);
		close(fd);
		return rc;
	}
	/* a revision past WRITER_REV_MAX cannot go on: corrupt */
	if (atomic_load_explicit(&m->hdr->revision, memory_order_acquire) >
	    WRITER_REV_MAX) {
		segment_unmap(m);
		close(fd);
		return -EPROTO;
	}
	m->generation = m->hdr->generation;
	m->writer_pid = m->hdr->writer_pid;
	*fd_out = fd;
	return 0;
}

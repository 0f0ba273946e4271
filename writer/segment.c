/* SPDX-License-Identifier: MIT */
/*
 * segment.c - the writer's files: the lock file, and segment files created
 * at a temporary name and renamed over the registry's name when complete.
 *
 * A segment is never truncated or shrunk once it may be mapped: a reader
 * touching a page past the end of a file gets SIGBUS.  Space is reserved
 * with fallocate() when the file is created, so running out of tmpfs shows
 * up here as -ENOSPC instead of as a SIGBUS in the writer later.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "internal.h"
#include "liveness.h"
#include "seqcount.h"

int segment_lock(struct shmreg_writer *w)
{
	char path[PATH_MAX + 8];
	struct flock fl;
	int fd, rc;

	rc = shm_lock_path(path, sizeof(path), w->path);
	if (rc < 0)
		return -EINVAL;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, w->mode);
	if (fd < 0)
		return -errno;
	/* readers open the lock file to test for a live writer */
	(void)fchmod(fd, w->mode);
	/* An open-file-description lock: owned by this open file, so a
	 * second shmreg_writer_open in the same process conflicts too (a
	 * POSIX record lock would not), and released by the kernel when the
	 * process dies, however it dies. */
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		rc = (errno == EAGAIN || errno == EACCES) ? -EBUSY : -errno;
		close(fd);
		return rc;
	}
	w->lock_fd = fd;
	return 0;
}

/* Informational: liveness is the lock. */
uint64_t segment_start_time(void)
{
	char buf[1024];
	unsigned long long start = 0;
	ssize_t n;
	char *p;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* the command name may contain spaces: skip past its ')' */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* fields 3..21 then 22 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
			  "%*d %*d %*d %*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

int segment_create(struct shmreg_writer *w, const struct shm_geom *g,
		   uint64_t generation, int *fd_out, struct shm_map *m,
		   char *tmp_path, size_t tmp_cap)
{
	struct shm_hdr *h;
	void *base;
	int fd, rc, n;

	n = snprintf(tmp_path, tmp_cap, "%s.new.%d", w->path, (int)getpid());
	if (n < 0 || (size_t)n >= tmp_cap)
		return -EINVAL;
	/* a leftover from a writer of this pid that died mid-handoff */
	(void)unlink(tmp_path);
	fd = open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
		  w->mode);
	if (fd < 0)
		return -errno;
	(void)fchmod(fd, w->mode);
	rc = posix_fallocate(fd, 0, (off_t)g->segment_size);
	if (rc == EOPNOTSUPP || rc == ENOSYS || rc == EINVAL)
		rc = ftruncate(fd, (off_t)g->segment_size) < 0 ? errno : 0;
	if (rc) {
		rc = -rc;
		goto fail;
	}
	base = mmap(NULL, g->segment_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE,
		    fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
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
	h->writer_pid = getpid();
	h->writer_start = segment_start_time();
	h->created_ns = shm_realtime_ns();
	*fd_out = fd;
	return 0;
fail:
	close(fd);
	unlink(tmp_path);
	return rc;
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

	fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < (off_t)SHM_HEADER_SIZE) {
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
	m->generation = m->hdr->generation;
	m->writer_pid = m->hdr->writer_pid;
	*fd_out = fd;
	return 0;
}

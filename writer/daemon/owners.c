/* SPDX-License-Identifier: MIT */
/* owners.c - shmregd's owner-bound entries: pid owners and connection owners. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "daemon.h"

/*
 * How it works
 *
 * Pid owners.  A put with owner_pid P opens a pidfd for P (once per pid)
 * and polls it through the ring; the pidfd turns readable when P exits.
 * The completion calls shmreg_writer_del_owner() on each registry P put
 * entries in (owner.regmask), one commit per registry, so a reader sees all
 * of P's entries vanish together.  The latency from exit to removal is one
 * loop iteration: the kernel completes the poll from the exiting task's
 * notification, the loop wakes and deletes.  pidfd_open fails with ESRCH
 * for a pid that does not exist, and poll() with a zero timeout says
 * whether an existing one has already exited (a zombie): both refuse the
 * put with -ESRCH before anything is written.
 *
 * A pid is watched only while it owns entries.  The daemon counts them
 * (owner.nentries): +1 when a put makes P the owner of a key, -1 when a
 * put or delete through the daemon removes an entry that P owned (the
 * entry's owner is looked up before the change, only while some pid is
 * watched) or a connection's close deletes one of its entries put with
 * P.  At 0 the poll is cancelled and the pidfd closed.  The count can
 * only be too high, never too low: an entry that vanishes without the
 * daemon deleting it (its TTL passed) is not subtracted, which keeps its
 * pid watched until it exits, as before; an entry is never left with an
 * unwatched owner.
 *
 * Connection owners (SHMREG_EPHEMERAL).  The segment records the flag but
 * not the connection, so the daemon keeps a table key -> owning connection
 * per registry, and a list per connection.  Every put and delete that goes
 * through the daemon updates it: a put by anyone else (ephemeral or not)
 * takes the key away from its previous owner, a delete forgets it.  Entries
 * can also vanish without the daemon deleting them (their owner pid exited,
 * their TTL passed); the table then holds a stale claim, which is harmless:
 * the key can only come back through a put, which replaces the claim, and
 * deleting an absent key on close changes nothing.  When a connection
 * closes, its keys are deleted in one batch (one commit).
 *
 * Restart.  Neither table survives the daemon, but the entries do.  A new
 * daemon lists each registry once at start (owner_adopt): it watches every
 * owner pid it finds (removing at once the entries of pids that are gone)
 * and deletes every ephemeral entry, whose connection cannot exist any
 * more.
 */

/* ---- pid owners ---- */

static bool pidfd_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP));
}

static size_t pid_bucket(const struct daemon *d, pid_t pid)
{
	return ((uint32_t)pid * 2654435761u) & d->own_mask;
}

static struct owner **owner_slot(struct daemon *d, pid_t pid)
{
	struct owner **pp;

	if (!d->own_tab)
		return NULL;
	for (pp = &d->own_tab[pid_bucket(d, pid)]; *pp; pp = &(*pp)->hnext)
		if ((*pp)->pid == pid)
			break;
	return pp;
}

/* Grow (or create) the table when owners outnumber buckets: chains stay
 * short, and rehashing is amortised O(1) per insert. */
static int owner_grow(struct daemon *d)
{
	size_t n = d->own_tab ? (d->own_mask + 1) * 2 : 64;
	struct owner **t = calloc(n, sizeof(*t));
	size_t old = d->own_tab ? d->own_mask + 1 : 0;

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < old; i++) {
		struct owner *o = d->own_tab[i], *next;

		for (; o; o = next) {
			size_t b = ((uint32_t)o->pid * 2654435761u) & (n - 1);

			next = o->hnext;
			o->hnext = t[b];
			t[b] = o;
		}
	}
	free(d->own_tab);
	d->own_tab = t;
	d->own_mask = n - 1;
	return 0;
}

/* The poll of a released owner is being cancelled; its completion frees
 * it (owner_exited).  Doubly linked so that costs O(1). */
static void released_add(struct daemon *d, struct owner *ow)
{
	ow->rprev = NULL;
	ow->hnext = d->own_released;
	if (d->own_released)
		d->own_released->rprev = ow;
	d->own_released = ow;
}

static void released_del(struct daemon *d, struct owner *ow)
{
	if (ow->rprev)
		ow->rprev->hnext = ow->hnext;
	else
		d->own_released = ow->hnext;
	if (ow->hnext)
		ow->hnext->rprev = ow->rprev;
}

static void owner_unhash(struct daemon *d, struct owner *ow)
{
	struct owner **pp;

	for (pp = owner_slot(d, ow->pid); pp && *pp; pp = &(*pp)->hnext)
		if (*pp == ow) {
			*pp = ow->hnext;
			break;
		}
	d->nowners--;
}

static void arm_pidfd(struct daemon *d, struct owner *ow)
{
	struct io_uring_sqe *sqe = d_sqe(d);

	io_uring_prep_poll_add(sqe, ow->pidfd, POLLIN);
	io_uring_sqe_set_data64(sqe, d_ud(ow, D_TAG_PIDFD));
}

int owner_watch(struct daemon *d, pid_t pid, struct reg *r)
{
	struct owner **pp = owner_slot(d, pid), *ow;
	int fd;

	if (pid <= 0)
		return -EINVAL;
	if (pp && *pp) {
		ow = *pp;
		if (pidfd_exited(ow->pidfd))
			return -ESRCH;
		ow->regmask |= 1ull << r->idx;
		return 0;
	}
	if (!d->own_tab || d->nowners > d->own_mask) {
		if (owner_grow(d))
			return -ENOMEM;
	}
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return errno == ESRCH || errno == EINVAL ? -ESRCH : -errno;
	if (pidfd_exited(fd)) {
		close(fd);
		return -ESRCH;
	}
	ow = calloc(1, sizeof(*ow));
	if (!ow) {
		close(fd);
		return -ENOMEM;
	}
	ow->pid = pid;
	ow->pidfd = fd;
	ow->regmask = 1ull << r->idx;
	pp = owner_slot(d, pid);
	ow->hnext = *pp;
	*pp = ow;
	d->nowners++;
	arm_pidfd(d, ow);
	return 0;
}

pid_t owner_of(struct daemon *d, struct reg *r, const void *key,
	       size_t klen)
{
	shmreg_info_t info;

	/* no watched pid, nobody to unwatch: skip the lookup */
	if (!d->nowners)
		return 0;
	/* the daemon is the writer: no torn read, no -EAGAIN; an expired
	 * entry reads as absent (see "can only be too high" above) */
	if (shmreg_get(shmreg_writer_reader(r->w), key, klen, NULL, 0,
		       &info) < 0)
		return 0;
	return info.owner_pid;
}

void owner_ref(struct daemon *d, pid_t pid, int delta)
{
	struct owner **pp, *ow;
	struct io_uring_sqe *sqe;

	if (pid <= 0)
		return;
	pp = owner_slot(d, pid);
	if (!pp || !*pp)
		return;
	ow = *pp;
	if (delta > 0)
		ow->nentries += (uint64_t)delta;
	else if (ow->nentries >= (uint64_t)-delta)
		ow->nentries -= (uint64_t)-delta;
	else
		ow->nentries = 0;
	if (ow->nentries)
		return;
	/* owns nothing: stop watching.  The pidfd closes now; the struct
	 * lives until the cancelled poll reports (it names it). */
	owner_unhash(d, ow);
	ow->released = true;
	close(ow->pidfd);
	ow->pidfd = -1;
	released_add(d, ow);
	sqe = d_sqe(d);
	io_uring_prep_poll_remove(sqe, d_ud(ow, D_TAG_PIDFD));
	io_uring_sqe_set_data64(sqe, D_TAG_IGNORE);
	d_log(D_DEBUG, "pid %d owns no entries any more: not watched",
	      (int)pid);
}

void owner_exited(struct daemon *d, struct owner *ow)
{
	if (ow->released) {
		released_del(d, ow);
		free(ow);
		return;
	}
	/* A poll that ended for another reason than the exit (it cannot,
	 * for a pidfd, short of ring teardown) is re-armed. */
	if (!pidfd_exited(ow->pidfd)) {
		arm_pidfd(d, ow);
		return;
	}
	for (unsigned i = 0; i < d->nreg; i++) {
		int64_t n;

		if (!(ow->regmask & (1ull << d->reg[i].idx)))
			continue;
		if (d->reg[i].mirror) {
			/* its keys are in etcd, under its lease */
			mirror_pid_exited(&d->reg[i], ow->pid);
			continue;
		}
		n = shmreg_writer_del_owner(d->reg[i].w, ow->pid);
		if (n > 0)
			d->st.owner_deletes += (uint64_t)n;
		if (n != 0)
			d_log(n < 0 ? D_ERR : D_DEBUG,
			      "pid %d exited: %s%lld entr%s removed from %s",
			      (int)ow->pid, n < 0 ? "error, " : "",
			      (long long)(n < 0 ? 0 : n), n == 1 ? "y" : "ies",
			      d->reg[i].name);
	}
	owner_unhash(d, ow);
	close(ow->pidfd);
	free(ow);
}

void owner_free_all(struct daemon *d)
{
	for (size_t i = 0; d->own_tab && i <= d->own_mask; i++) {
		struct owner *o = d->own_tab[i], *next;

		for (; o; o = next) {
			next = o->hnext;
			close(o->pidfd);
			free(o);
		}
	}
	free(d->own_tab);
	d->own_tab = NULL;
	d->nowners = 0;
	/* the ring is gone: their polls will not report */
	while (d->own_released) {
		struct owner *o = d->own_released;

		d->own_released = o->hnext;
		free(o);
	}
}

/* ---- connection owners ---- */

struct eph {
	struct eph *hnext;          /* registry's hash chain */
	struct eph *cprev, *cnext;  /* owning connection's list */
	struct conn *conn;
	uint64_t hash;
	pid_t owner_pid;            /* the entry's owner pid as put, or 0 */
	uint32_t klen;
	uint8_t key[];
};

static uint64_t eph_hash(const struct daemon *d, const void *key, size_t klen)
{
	/* seeded: clients choose the keys, and must not be able to choose
	 * colliding ones */
	return XXH3_64bits_withSeed(key, klen, d->eph_seed);
}

static struct eph **eph_slot(struct reg *r, uint64_t h, const void *key,
			     size_t klen)
{
	struct eph **pp;

	if (!r->eph_tab)
		return NULL;
	for (pp = &r->eph_tab[h & r->eph_mask]; *pp; pp = &(*pp)->hnext)
		if ((*pp)->hash == h && (*pp)->klen == klen &&
		    !memcmp((*pp)->key, key, klen))
			break;
	return pp;
}

static int eph_grow(struct reg *r)
{
	size_t n = r->eph_tab ? (r->eph_mask + 1) * 2 : 256;
	size_t old = r->eph_tab ? r->eph_mask + 1 : 0;
	struct eph **t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < old; i++) {
		struct eph *e = r->eph_tab[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			e->hnext = t[e->hash & (n - 1)];
			t[e->hash & (n - 1)] = e;
		}
	}
	free(r->eph_tab);
	r->eph_tab = t;
	r->eph_mask = n - 1;
	return 0;
}

/* Unlink *pp from its chain and its connection's list, and free it. */
static void eph_remove(struct reg *r, struct eph **pp)
{
	struct eph *e = *pp;

	*pp = e->hnext;
	if (e->cprev)
		e->cprev->cnext = e->cnext;
	else
		e->conn->eph_head = e->cnext;
	if (e->cnext)
		e->cnext->cprev = e->cprev;
	r->eph_count--;
	free(e);
}

int eph_after_put(struct daemon *d, struct reg *r, struct conn *c,
		  const void *key, size_t klen, bool ephemeral,
		  pid_t owner_pid)
{
	uint64_t h;
	struct eph **pp, *e;

	if (!ephemeral && !r->eph_count)
		return 0;
	h = eph_hash(d, key, klen);
	pp = eph_slot(r, h, key, klen);
	if (pp && *pp) {
		if (ephemeral && (*pp)->conn == c) {
			(*pp)->owner_pid = owner_pid;
			return 0;
		}
		eph_remove(r, pp);
	}
	if (!ephemeral)
		return 0;
	if (!r->eph_tab || r->eph_count > r->eph_mask) {
		if (eph_grow(r))
			return -ENOMEM;
	}
	e = malloc(sizeof(*e) + klen);
	if (!e)
		return -ENOMEM;
	e->hash = h;
	e->owner_pid = owner_pid;
	e->klen = (uint32_t)klen;
	memcpy(e->key, key, klen);
	e->conn = c;
	e->hnext = r->eph_tab[h & r->eph_mask];
	r->eph_tab[h & r->eph_mask] = e;
	e->cprev = NULL;
	e->cnext = c->eph_head;
	if (c->eph_head)
		c->eph_head->cprev = e;
	c->eph_head = e;
	r->eph_count++;
	return 0;
}

void eph_after_del(struct daemon *d, struct reg *r, const void *key,
		   size_t klen)
{
	struct eph **pp;

	if (!r->eph_count)
		return;
	pp = eph_slot(r, eph_hash(d, key, klen), key, klen);
	if (pp && *pp)
		eph_remove(r, pp);
}

void eph_conn_closed(struct conn *c)
{
	struct reg *r = c->reg;
	unsigned long long n = 0;
	struct eph *e;

	if (!c->eph_head || !r)
		return;
	/* One batch, one commit: a snapshot reader sees the connection's
	 * entries all there or all gone.  The work is one delete per key the
	 * connection owns (a bound the client chose by putting them). */
	shmreg_writer_batch_begin(r->w);
	while ((e = c->eph_head)) {
		struct eph **pp;
		int64_t gone;

		/* with its descendants, as an owner's entries go when the
		 * owner exits: a plain delete of an entry with children is
		 * -ENOTEMPTY, and the entry would outlive its connection.
		 * A descendant's own records (another connection's, an
		 * owner's count) go stale and find nothing later. */
		gone = shmreg_writer_del_tree(r->w, e->key, e->klen);
		if (gone > 0) {
			n += (unsigned long long)gone;
			owner_ref(c->d, e->owner_pid, -1);
		}
		pp = eph_slot(r, e->hash, e->key, e->klen);
		if (pp && *pp == e) {
			eph_remove(r, pp);
		} else {
			/* not in its chain: cannot happen; unlink from the
			 * list at least, so the loop ends */
			c->eph_head = e->cnext;
			if (e->cnext)
				e->cnext->cprev = NULL;
			r->eph_count--;
			free(e);
		}
	}
	shmreg_writer_batch_end(r->w);
	d_log(D_DEBUG, "connection %llu: %llu ephemeral entr%s removed",
	      (unsigned long long)c->serial, n, n == 1 ? "y" : "ies");
}

void eph_free_all(struct daemon *d)
{
	for (unsigned i = 0; i < D_MAX_REGISTRIES; i++) {
		struct reg *r = &d->reg[i];

		for (size_t b = 0; r->eph_tab && b <= r->eph_mask; b++) {
			struct eph *e = r->eph_tab[b], *next;

			for (; e; e = next) {
				next = e->hnext;
				free(e);
			}
		}
		free(r->eph_tab);
		r->eph_tab = NULL;
		r->eph_count = 0;
	}
}

/* ---- restart ---- */

struct adopt {
	pid_t *pids;
	size_t npids, pcap;
	struct eph **keys;          /* reused as plain key holders */
	size_t nkeys, kcap;
	int err;
};

static int adopt_cb(const void *key, size_t klen, const void *val,
		    size_t vlen, const shmreg_info_t *info, void *arg)
{
	struct adopt *a = arg;

	(void)val;
	(void)vlen;
	if (info->flags & SHMREG_EPHEMERAL) {
		struct eph *e;

		if (a->nkeys == a->kcap) {
			size_t cap = a->kcap ? a->kcap * 2 : 64;
			struct eph **k = realloc(a->keys, cap * sizeof(*k));

			if (!k)
				goto nomem;
			a->keys = k;
			a->kcap = cap;
		}
		e = malloc(sizeof(*e) + klen);
		if (!e)
			goto nomem;
		e->klen = (uint32_t)klen;
		memcpy(e->key, key, klen);
		a->keys[a->nkeys++] = e;
	} else if (info->owner_pid > 0) {
		if (a->npids == a->pcap) {
			size_t cap = a->pcap ? a->pcap * 2 : 64;
			pid_t *p = realloc(a->pids, cap * sizeof(*p));

			if (!p)
				goto nomem;
			a->pids = p;
			a->pcap = cap;
		}
		a->pids[a->npids++] = info->owner_pid;
	}
	return 0;
nomem:
	a->err = -ENOMEM;
	return 1;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

int owner_adopt(struct daemon *d, struct reg *r)
{
	struct adopt a = { 0 };
	unsigned long long gone = 0, dropped = 0, watched = 0;
	ssize_t ret;

	/* collect first, change after: the list walk must not race our own
	 * deletes */
	ret = shmreg_list(shmreg_writer_reader(r->w), NULL, 0, adopt_cb, &a);
	if (a.err)
		ret = a.err;
	if (ret >= 0 && a.nkeys) {
		shmreg_writer_batch_begin(r->w);
		for (size_t i = 0; i < a.nkeys; i++)
			if (shmreg_writer_del(r->w, a.keys[i]->key,
					      a.keys[i]->klen) > 0)
				dropped++;
		shmreg_writer_batch_end(r->w);
	}
	if (ret >= 0 && a.npids) {
		qsort(a.pids, a.npids, sizeof(*a.pids), cmp_pid);
		for (size_t i = 0, j; i < a.npids; i = j) {
			int err;

			/* a.pids[i .. j) are one pid's entries */
			for (j = i + 1; j < a.npids && a.pids[j] == a.pids[i];
			     j++)
				;
			err = owner_watch(d, a.pids[i], r);
			if (err == -ESRCH) {
				int64_t n = shmreg_writer_del_owner(r->w,
								    a.pids[i]);

				if (n > 0)
					gone += (unsigned long long)n;
			} else if (err < 0) {
				ret = err;
				break;
			} else {
				owner_ref(d, a.pids[i], (int)(j - i));
				watched++;
			}
		}
	}
	if (dropped || gone || watched)
		d_log(D_INFO, "registry %s: watching %llu owner pid%s; removed "
		      "%llu entr%s of exited owners and %llu connection-owned",
		      r->name, watched, watched == 1 ? "" : "s", gone,
		      gone == 1 ? "y" : "ies", dropped);
	for (size_t i = 0; i < a.nkeys; i++)
		free(a.keys[i]);
	free(a.keys);
	free(a.pids);
	return ret < 0 ? (int)ret : 0;
}

/* SPDX-License-Identifier: MIT */
/* loop.c - shmregd's one io_uring event loop: accept, signals, timer. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "daemon.h"

/*
 * How it works
 *
 * Everything the daemon waits for is an io_uring request, and the loop is
 * "submit what is queued, wait for one completion, handle every completion
 * there is":
 *
 *   - one multishot accept on the listening socket (a CQE per connection);
 *   - per connection, one multishot recv drawing from a shared ring of
 *     provided buffers (buffer group 0), so an idle connection pins no
 *     buffer; each received chunk is decoded at once and the buffer goes
 *     straight back to the ring (a partial frame is copied to the
 *     connection's own buffer first);
 *   - per connection, at most one send in flight, of the replies queued
 *     while the previous send ran (see conn.c);
 *   - one poll per watched owner pid (pidfd, POLLIN = the process exited);
 *   - one read of the signalfd (SIGTERM/SIGINT; SIGHUP reloads --load);
 *   - one timeout, the tick that finds stalled and idle connections,
 *     closes refused peers that never asked anything, and ends the
 *     shutdown drain;
 *   - per registry, one poll of its expiry timer (see "Expiry" below);
 *   - per registry with --data-dir, at most one group of log records: a
 *     write linked to an fdatasync (group_commit.c).
 *
 * Requests are applied to the writer as they are decoded; the writer never
 * blocks on I/O (it writes shared memory; its log records go out through
 * the ring, and only a snapshot's log rotation writes and syncs in place,
 * rarely: see docs/persistence.md), and nothing else in the loop
 * makes a blocking call: pidfd_open, poll with a zero timeout, getsockopt
 * and shutdown return at once.  The ring is set up SINGLE_ISSUER and
 * DEFER_TASKRUN when the kernel has them, so completions are run in this
 * thread when it asks for them, not in interrupts of its work.
 *
 * The amount of work per iteration is bounded by the CQ ring: each CQE
 * carries at most one buffer (D_BUFSZ bytes) of input or one finished send.
 *
 * Expiry.  Each registry's shmreg_writer_expiry_fd() is a timerfd armed at
 * the registry's next TTL deadline; its poll completing means entries are
 * due.  The loop then removes at most D_EXPIRE_CHUNK of them
 * (shmreg_writer_expire), but only after the replies of the iteration's
 * requests have been submitted, so no reply waits for a chunk, and polls
 * again.  When more are due the timer is left armed in the past, so the
 * new poll completes at once, and its CQE joins the next iteration's with
 * the requests received meanwhile: a million entries expiring together
 * delay a request by at most the rest of one chunk, never the whole sweep.
 */

#define SQ_ENTRIES 1024u
#define CQ_ENTRIES 16384u

static bool ring_ok;

uint64_t d_now_ns(void)
{
	return (uint64_t)shm_monotonic_ns();
}

struct io_uring_sqe *d_sqe(struct daemon *d)
{
	struct io_uring_sqe *sqe;

	/* The SQ is full only when this iteration queued SQ_ENTRIES requests;
	 * submitting hands them to the kernel and frees every slot (a kernel
	 * with IORING_FEAT_NODROP never refuses a submission for a full CQ:
	 * completions beyond it wait in its overflow list).  The bound only
	 * guards against a kernel that breaks that promise. */
	for (int i = 0; i < 64; i++) {
		sqe = io_uring_get_sqe(&d->ring);
		if (sqe)
			return sqe;
		io_uring_submit(&d->ring);
	}
	d_log(D_ERR, "io_uring submission queue stuck; aborting");
	abort();
}

void d_recycle_buf(struct daemon *d, unsigned bid)
{
	if (bid >= D_NBUFS)
		return;
	io_uring_buf_ring_add(d->br, d->bufs + (size_t)bid * D_BUFSZ, D_BUFSZ,
			      (unsigned short)bid,
			      io_uring_buf_ring_mask(D_NBUFS), 0);
	io_uring_buf_ring_advance(d->br, 1);
}

static int setup_bufs(struct daemon *d)
{
	struct io_uring_buf_reg reg = { 0 };
	int ret;

	/* liburing 2.3 has no io_uring_setup_buf_ring(): map and register
	 * the ring by hand (page-aligned, as the kernel requires) */
	d->br_bytes = D_NBUFS * sizeof(struct io_uring_buf);
	d->br = mmap(NULL, d->br_bytes, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (d->br == MAP_FAILED) {
		d->br = NULL;
		return -ENOMEM;
	}
	d->bufs = malloc((size_t)D_NBUFS * D_BUFSZ);
	if (!d->bufs)
		return -ENOMEM;
	io_uring_buf_ring_init(d->br);
	reg.ring_addr = (unsigned long)d->br;
	reg.ring_entries = D_NBUFS;
	reg.bgid = 0;
	ret = io_uring_register_buf_ring(&d->ring, &reg, 0);
	if (ret < 0) {
		d_log(D_ERR, "io_uring buffer ring: %s (Linux >= 6.0 needed)",
		      strerror(-ret));
		return ret == -EINVAL ? -EOPNOTSUPP : ret;
	}
	for (unsigned i = 0; i < D_NBUFS; i++)
		io_uring_buf_ring_add(d->br, d->bufs + (size_t)i * D_BUFSZ,
				      D_BUFSZ, (unsigned short)i,
				      io_uring_buf_ring_mask(D_NBUFS), (int)i);
	io_uring_buf_ring_advance(d->br, D_NBUFS);
	return 0;
}

int loop_init(struct daemon *d)
{
	struct io_uring_params p = { 0 };
	uint64_t tick, shortest;
	sigset_t set;
	int ret;

	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = CQ_ENTRIES;
	ret = io_uring_queue_init_params(SQ_ENTRIES, &d->ring, &p);
	if (ret == -EINVAL) {
		/* before Linux 6.1: no DEFER_TASKRUN; fine, just slower */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = CQ_ENTRIES;
		ret = io_uring_queue_init_params(SQ_ENTRIES, &d->ring, &p);
	}
	if (ret < 0) {
		d_log(D_ERR, "io_uring unavailable: %s", strerror(-ret));
		return ret == -EINVAL ? -EOPNOTSUPP : ret;
	}
	ring_ok = true;
	if (!(p.features & IORING_FEAT_NODROP)) {
		d_log(D_ERR, "io_uring without IORING_FEAT_NODROP (Linux >= 5.5 "
		      "needed)");
		return -EOPNOTSUPP;
	}
	ret = setup_bufs(d);
	if (ret < 0)
		return ret;

	/* signals arrive as signalfd reads in the loop, never as handlers */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	d->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sig_fd < 0)
		return -errno;

	if (getrandom(&d->eph_seed, sizeof(d->eph_seed), GRND_NONBLOCK) < 0)
		d->eph_seed = d_now_ns() ^ (uint64_t)getpid() << 32;

	/* a quarter of the shortest deadline the tick must notice, within
	 * [10 ms, 1 s] */
	shortest = d->o->stall_ns < d->o->drain_ns ? d->o->stall_ns
						   : d->o->drain_ns;
	if (d->o->idle_ns && d->o->idle_ns < shortest)
		shortest = d->o->idle_ns;
	if (D_REFUSE_NS < shortest)
		shortest = D_REFUSE_NS;
	tick = shortest / 4;
	if (tick < 10000000ull)
		tick = 10000000ull;
	if (tick > 1000000000ull)
		tick = 1000000000ull;
	/* persistence: batch mode syncs on the tick while no request comes */
	for (unsigned i = 0; i < d->o->nreg; i++) {
		const struct d_persist_opt *po = &d->o->reg[i].po;
		uint64_t b = (po->batch_ms > 0 ? (uint64_t)po->batch_ms : 10) *
			     1000000ull;

		if (po->data_dir && b < tick)
			tick = b;
	}
	d->tick_ts.tv_sec = (long long)(tick / 1000000000ull);
	d->tick_ts.tv_nsec = (long long)(tick % 1000000000ull);
	return 0;
}

void loop_exit(struct daemon *d)
{
	if (ring_ok) {
		/* cancels everything still in flight; the kernel is done
		 * with every buffer when it returns */
		io_uring_queue_exit(&d->ring);
		ring_ok = false;
	}
	if (d->br)
		munmap(d->br, d->br_bytes);
	d->br = NULL;
	free(d->bufs);
	d->bufs = NULL;
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	d->sig_fd = -1;
}

static void arm_accept(struct daemon *d)
{
	struct io_uring_sqe *sqe;

	if (d->accept_armed || d->listen_fd < 0 || d->state != D_RUNNING)
		return;
	sqe = d_sqe(d);
	io_uring_prep_multishot_accept(sqe, d->listen_fd, NULL, NULL,
				       SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, d_ud(d, D_TAG_ACCEPT));
	d->accept_armed = true;
}

/* The signalfd is polled through the ring and read here, without blocking:
 * a read submitted to io_uring could run in a kernel worker thread, whose
 * pending signals are not ours. */
static void arm_signal(struct daemon *d)
{
	struct io_uring_sqe *sqe = d_sqe(d);

	io_uring_prep_poll_add(sqe, d->sig_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, d_ud(d, D_TAG_SIGNAL));
}

static void arm_tick(struct daemon *d)
{
	struct io_uring_sqe *sqe = d_sqe(d);

	io_uring_prep_timeout(sqe, &d->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, d_ud(d, D_TAG_TICK));
}

static void arm_expiry(struct daemon *d, struct reg *r)
{
	int fd = shmreg_writer_expiry_fd(r->w);
	struct io_uring_sqe *sqe;

	if (fd < 0) {
		/* its expired entries stay invisible, only not reclaimed */
		d_log(D_ERR, "registry %s: no expiry timer: %s", r->name,
		      strerror(-fd));
		return;
	}
	sqe = d_sqe(d);
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, d_ud(r, D_TAG_EXPIRY));
}

static void on_expiry(struct daemon *d, struct reg *r,
		      const struct io_uring_cqe *cqe)
{
	if (d->state == D_DONE)
		return;
	if (cqe->res < 0 && cqe->res != -EINTR) {
		d_log(D_ERR, "registry %s: expiry timer poll: %s", r->name,
		      strerror(-cqe->res));
		return;
	}
	/* swept by sweep_due(), after the replies */
	if (!r->expiry_due)
		d->nexpiry_due++;
	r->expiry_due = true;
}

/* One chunk per registry whose timer fired, then poll its timer again. */
static void sweep_due(struct daemon *d)
{
	for (unsigned i = 0; i < d->nreg; i++) {
		struct reg *r = &d->reg[i];
		int64_t n;

		if (!r->expiry_due)
			continue;
		r->expiry_due = false;
		d->nexpiry_due--;
		n = shmreg_writer_expire(r->w, D_EXPIRE_CHUNK);
		if (n < 0)
			d_log_limited(D_ERR, "registry %s: expiry: %s",
				      r->name, strerror((int)-n));
		else if (n > 0)
			d_log(D_TRACE, "registry %s: %lld expired entr%s "
			      "removed", r->name, (long long)n,
			      n == 1 ? "y" : "ies");
		arm_expiry(d, r);
	}
}

static void on_accept(struct daemon *d, const struct io_uring_cqe *cqe)
{
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		d->accept_armed = false;
	if (res >= 0) {
		/* conn_new() checks the peer and the limits (and logs) */
		if (d->state != D_RUNNING || !conn_new(d, res))
			close(res);
	} else if (res == -EINVAL && d->conn_serial == 0) {
		/* the very first accept: the kernel has no multishot accept */
		d_log(D_ERR, "multishot accept unsupported (Linux >= 5.19 "
		      "needed)");
		d->fatal = -EOPNOTSUPP;
		d->state = D_DONE;
		return;
	} else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM ||
		   res == -ENOBUFS) {
		/* out of descriptors or memory: do not spin on the error;
		 * the tick re-arms the accept */
		d_log_limited(D_ERR, "accept: %s", strerror(-res));
		return;
	} else if (res != -ECANCELED) {
		d_log_limited(D_DEBUG, "accept: %s", strerror(-res));
	}
	arm_accept(d);
}

static void on_signal(struct daemon *d, const struct io_uring_cqe *cqe)
{
	/* at most a few signals per poll: the bound is the number of signal
	 * numbers we listen to, since pending standard signals do not queue */
	for (int i = 0; i < 4; i++) {
		ssize_t n = read(d->sig_fd, &d->siginfo, sizeof(d->siginfo));
		int sig;

		if (n != (ssize_t)sizeof(d->siginfo))
			break;
		sig = (int)d->siginfo.ssi_signo;
		if (sig == SIGHUP) {
			/* --load again; only while running: a draining
			 * daemon changes nothing more */
			if (d->state == D_RUNNING) {
				d_log(D_INFO, "SIGHUP: reloading");
				load_reload_all(d);
			}
			continue;
		}
		if (d->state == D_RUNNING) {
			d_log(D_INFO, "%s: finishing in-flight requests",
			      strsignal(sig));
			d_begin_drain(d);
		} else {
			d_log(D_INFO, "%s again: closing every connection now",
			      strsignal(sig));
			d->state = D_DONE;
		}
	}
	if (cqe->res < 0 && cqe->res != -EINTR && cqe->res != -ECANCELED) {
		d_log(D_ERR, "signalfd poll: %s", strerror(-cqe->res));
		d->fatal = cqe->res;
		d->state = D_DONE;
		return;
	}
	if (d->state != D_DONE)
		arm_signal(d);
}

static void on_tick(struct daemon *d)
{
	uint64_t now = d_now_ns();

	d_group_commit(d); /* persistence: batch mode's fdatasync on time */
	conn_check_stalls(d, now);
	conn_check_idle(d, now);
	metrics_tick(d, now);
	mirror_tick(d, now);
	if (d->state == D_DRAINING && now >= d->drain_deadline) {
		if (d->nconns)
			d_log(D_INFO, "drain timeout: closing %u connection%s",
			      d->nconns, d->nconns == 1 ? "" : "s");
		d->state = D_DONE;
	}
	if (d->state == D_RUNNING)
		arm_accept(d);
	if (d->state != D_DONE)
		arm_tick(d);
}

void d_begin_drain(struct daemon *d)
{
	struct conn *c, *next;

	d->state = D_DRAINING;
	d->drain_deadline = d_now_ns() + d->o->drain_ns;
	/* stop taking connections: new clients get ENOENT at once instead
	 * of waiting in a backlog that nobody will accept */
	if (d->unlink_socket) {
		unlink(d->o->socket_path);
		d->unlink_socket = false;
	}
	if (d->accept_armed) {
		struct io_uring_sqe *sqe = d_sqe(d);

		io_uring_prep_cancel64(sqe, d_ud(d, D_TAG_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, D_TAG_IGNORE);
	}
	metrics_stop(d);
	for (c = d->conns; c; c = next) {
		next = c->next;
		conn_drain(c);
	}
	if (!d->nconns)
		d->state = D_DONE;
}

static void dispatch(struct daemon *d, const struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	void *p = (void *)(uintptr_t)(ud & ~(uint64_t)D_TAG_MASK);

	switch (ud & D_TAG_MASK) {
	case D_TAG_ACCEPT:
		on_accept(d, cqe);
		break;
	case D_TAG_RECV:
		conn_recv_cqe(p, cqe);
		break;
	case D_TAG_SEND:
		conn_send_cqe(p, cqe);
		break;
	case D_TAG_PIDFD:
		owner_exited(d, p);
		break;
	case D_TAG_SIGNAL:
		on_signal(d, cqe);
		break;
	case D_TAG_TICK:
		on_tick(d);
		break;
	case D_TAG_EXPIRY:
		on_expiry(d, p, cqe);
		break;
	case D_TAG_METRICS:
		metrics_cqe(d, p, cqe);
		break;
	case D_TAG_MIRROR:
		mirror_cqe(d, p, cqe->res, cqe->flags & IORING_CQE_F_MORE);
		break;
	case D_TAG_LOG_WRITE:
	case D_TAG_LOG_SYNC:
		d_log_cqe(d, p, cqe, (ud & D_TAG_MASK) == D_TAG_LOG_SYNC);
		break;
	default:
		/* cancellations: their targets report for themselves */
		break;
	}
}

static void free_zombies(struct daemon *d)
{
	struct conn **pp = &d->zombies;

	while (*pp) {
		struct conn *c = *pp;

		if (c->ops) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		close(c->fd);
		free(c->in.p);
		free(c->out_q.p);
		free(c->out_s.p);
		free(c);
	}
}

int loop_run(struct daemon *d)
{
	arm_accept(d);
	metrics_arm(d);
	arm_signal(d);
	arm_tick(d);
	for (unsigned i = 0; i < d->nreg; i++)
		arm_expiry(d, &d->reg[i]);

	while (d->state != D_DONE) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret;

		/* persistence: the turn's changes go to the log as one
		 * group, their replies held until it completes */
		d_group_commit(d);
		conn_flush_dirty(d);
		if (d->nexpiry_due && d->state != D_DONE) {
			/* the replies go out first, then the sweep's chunk
			 * (one more io_uring_enter, only while sweeping) */
			io_uring_submit(&d->ring);
			sweep_due(d);
		}
		ret = io_uring_submit_and_wait(&d->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY && ret != -ETIME) {
			d_log(D_ERR, "io_uring_enter: %s", strerror(-ret));
			d->fatal = ret;
			break;
		}
		io_uring_for_each_cqe(&d->ring, head, cqe) {
			dispatch(d, cqe);
			n++;
		}
		io_uring_cq_advance(&d->ring, n);
		free_zombies(d);
		if (d->state == D_DRAINING && !d->nconns)
			d->state = D_DONE;
	}

	/* A log group in flight completes first: the kernel reads its
	 * buffer, which the writer's close frees (group_commit.c). */
	while (d_log_busy(d) && !d->fatal) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret = io_uring_submit_and_wait(&d->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY && ret != -ETIME)
			break; /* the writer's close writes the group itself */
		io_uring_for_each_cqe(&d->ring, head, cqe) {
			dispatch(d, cqe);
			n++;
		}
		io_uring_cq_advance(&d->ring, n);
	}

	/* Forced end (drain timeout, second signal, fatal error): whatever
	 * connections remain lose their unsent replies; their ephemeral
	 * entries still go, in one commit each. */
	while (d->conns)
		conn_kill(d->conns, "daemon stopping");
	return d->fatal;
}

/* SPDX-License-Identifier: MIT */
/*
 * bench_mirror.c - shmregd as a mirror of etcd, side by side with etcd in
 * one run on a 3-member loopback cluster the bench starts itself:
 *
 *   1. ack-to-visibility: a put sent to etcd's gateway directly; from its
 *      acknowledgement to its key being returned by shmreg_await in the
 *      mirror's segment (p50, p99), against etcd's own watch delivery of
 *      the same put to a watcher on the same member (from the same
 *      acknowledgement).  Target: p99 no more than 2 ms over etcd's.  A
 *      delivery that beat the acknowledgement counts as 0.  Both sides
 *      are blocked readers, woken by the change.  --spin instead polls
 *      shmreg_revision in a busy loop (the method before): on a machine
 *      with few CPUs the spinning reader takes a whole CPU from etcd's
 *      members and the daemon's threads and so makes its own tail.
 *   2. local get latency in the mirror's segment against a local registry
 *      of the same keys (the same code path: the target is "the same").
 *   3. sequential put throughput through the mirror (shmreg_put to the
 *      daemon, answered after etcd acked and the segment applied it)
 *      against puts to the gateway directly on one keep-alive connection.
 *
 * Usage: bench_mirror [--quick] [--spin] [--samples N] [--shmregd PATH].
 * --samples: ack-to-visibility samples (default 2000: the p99 is then the
 * 20th worst, not the 3rd of 300).  Needs /usr/bin/etcd
 * (exit 77 without it).  Exit 1 only when a check fails (a value read
 * back wrong).
 */
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <curl/curl.h>

#include "bench_common.h"
#include "bench_shmregd.h"
#include "shmreg.h"
#include "shmreg_writer.h"

#define NMEMBERS 3
#define REVTAB 8192u            /* watch arrivals by revision mod this */

static char tmpdir[PATH_MAX], sock[PATH_MAX + 16];
static pid_t etcd_pid[NMEMBERS], daemon_pid;
static int cport[NMEMBERS], pport[NMEMBERS];
static char urls[NMEMBERS][64];

/* ---- processes ---- */

static void stop_all(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
	for (int i = 0; i < NMEMBERS; i++)
		if (etcd_pid[i] > 0) {
			kill(etcd_pid[i], SIGTERM);
			waitpid(etcd_pid[i], NULL, 0);
			etcd_pid[i] = 0;
		}
	if (tmpdir[0])
		bench_rmtree(tmpdir);
	tmpdir[0] = 0;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_mirror: %s\n", what);
	stop_all();
	exit(1);
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("no free port");
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void start_etcd(void)
{
	char cluster[512] = "", arg[3][PATH_MAX + 32];
	int n = 0;

	for (int i = 0; i < NMEMBERS; i++) {
		cport[i] = free_port();
		pport[i] = free_port();
		snprintf(urls[i], sizeof(urls[i]), "http://127.0.0.1:%d",
			 cport[i]);
		n += snprintf(cluster + n, sizeof(cluster) - (size_t)n,
			      "%sb%d=http://127.0.0.1:%d", i ? "," : "", i,
			      pport[i]);
	}
	for (int i = 0; i < NMEMBERS; i++) {
		char log[PATH_MAX + 16];

		snprintf(arg[0], sizeof(arg[0]), "b%d", i);
		snprintf(arg[1], sizeof(arg[1]), "%s/etcd%d", tmpdir, i);
		snprintf(arg[2], sizeof(arg[2]), "http://127.0.0.1:%d",
			 pport[i]);
		snprintf(log, sizeof(log), "%s/etcd%d.log", tmpdir, i);
		etcd_pid[i] = fork();
		if (etcd_pid[i] == 0) {
			FILE *f = freopen(log, "w", stdout);

			(void)f;
			dup2(1, 2);
			execl("/usr/bin/etcd", "etcd", "--name", arg[0],
			      "--data-dir", arg[1],
			      "--listen-client-urls", urls[i],
			      "--advertise-client-urls", urls[i],
			      "--listen-peer-urls", arg[2],
			      "--initial-advertise-peer-urls", arg[2],
			      "--initial-cluster", cluster,
			      "--experimental-watch-progress-notify-interval",
			      "2s", (char *)NULL);
			_exit(127);
		}
	}
}

/* ---- the gateway ---- */

struct body {
	char buf[4096];
	size_t len;
};

static size_t body_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = sz * n, take = len;

	if (take > sizeof(b->buf) - 1 - b->len)
		take = sizeof(b->buf) - 1 - b->len;
	memcpy(b->buf + b->len, p, take);
	b->len += take;
	b->buf[b->len] = 0;
	return len;
}

/* "revision":"N" in @s (the header's comes first), or 0. */
static int64_t rev_in(const char *s, const char *field)
{
	const char *p = strstr(s, field);

	if (!p)
		return 0;
	p += strlen(field);
	while (*p == '"' || *p == ':')
		p++;
	return strtoll(p, NULL, 10);
}

static void b64(const char *in, char *out)
{
	static const char t[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(in), o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)in[i] << 16 |
			     (uint32_t)(uint8_t)in[i + 1] << 8 | (uint8_t)in[i + 2];
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = t[(v >> 6) & 63];
		out[o++] = t[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)(uint8_t)in[i] << 16 |
			     (i + 1 < n ? (uint32_t)(uint8_t)in[i + 1] << 8 : 0);
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = 0;
}

/* Put /b/KEY=VAL through member @m on handle @h: the revision, or -1. */
static int64_t gw_put(CURL *h, int m, const char *key, const char *val)
{
	char url[128], req[512], k[128], v[128], full[96];
	struct body b = { .len = 0 };

	snprintf(full, sizeof(full), "/b/%s", key);
	b64(full, k);
	b64(val, v);
	snprintf(url, sizeof(url), "%s/v3/kv/put", urls[m]);
	snprintf(req, sizeof(req), "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	if (curl_easy_perform(h) != CURLE_OK)
		return -1;
	return rev_in(b.buf, "\"revision\"");
}

/* ---- etcd's own watch delivery, on member 0 (the mirror's too) ---- */

static struct {
	pthread_mutex_t mu;
	int64_t rev[REVTAB];
	uint64_t t[REVTAB];
	atomic_bool stop;
	atomic_bool created;       /* etcd answered the create_request */
	char line[1 << 16];
	size_t len;
} wt = { .mu = PTHREAD_MUTEX_INITIALIZER };

static size_t watch_cb(char *p, size_t sz, size_t n, void *arg)
{
	size_t len = sz * n;
	uint64_t now = bench_now_ns();

	(void)arg;
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '\n') {
			if (wt.len < sizeof(wt.line) - 1)
				wt.line[wt.len++] = p[i];
			continue;
		}
		wt.line[wt.len] = 0;
		/* an event message: its kv's mod_revision */
		int64_t r = strstr(wt.line, "\"events\"")
				    ? rev_in(wt.line, "\"mod_revision\"") : 0;
		if (strstr(wt.line, "\"created\":true"))
			atomic_store(&wt.created, true);
		if (r > 0) {
			pthread_mutex_lock(&wt.mu);
			wt.rev[r % REVTAB] = r;
			wt.t[r % REVTAB] = now;
			pthread_mutex_unlock(&wt.mu);
		}
		wt.len = 0;
	}
	return len;
}

static int watch_stop_cb(void *a, curl_off_t b, curl_off_t c, curl_off_t d,
			 curl_off_t e)
{
	(void)a, (void)b, (void)c, (void)d, (void)e;
	return atomic_load(&wt.stop);
}

static void *watch_main(void *arg)
{
	char url[128], req[256], k[64], e[64];
	CURL *h = curl_easy_init();

	(void)arg;
	b64("/b/", k);
	b64("/b0", e);
	snprintf(url, sizeof(url), "%s/v3/watch", urls[0]);
	snprintf(req, sizeof(req), "{\"create_request\":{\"key\":\"%s\","
		 "\"range_end\":\"%s\"}}", k, e);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, req);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_cb);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_stop_cb);
	curl_easy_perform(h);
	curl_easy_cleanup(h);
	return NULL;
}

/* When etcd's watcher got revision @r (0: not yet). */
static uint64_t watch_time(int64_t r)
{
	uint64_t t = 0;

	pthread_mutex_lock(&wt.mu);
	if (wt.rev[r % REVTAB] == r)
		t = wt.t[r % REVTAB];
	pthread_mutex_unlock(&wt.mu);
	return t;
}

/* ---- the mirror ---- */

static void start_daemon(const char *bin)
{
	char fdarg[16], buf[8], all[3 * 64 + 4];
	int p[2];

	snprintf(sock, sizeof(sock), "%s/d.sock", tmpdir);
	snprintf(all, sizeof(all), "%s,%s,%s", urls[0], urls[1], urls[2]);
	if (pipe(p) < 0)
		die("pipe");
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		close(p[0]);
		execl(bin, bin, "--registry", "benchm", "--socket", sock,
		      "--ready-fd", fdarg, "--quiet",
		      "--etcd", all, "--etcd-prefix", "/b/", (char *)NULL);
		perror(bin);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], buf, 6) != 6 || memcmp(buf, "READY\n", 6))
		die("shmregd did not start");
	close(p[0]);
}

static double pct(double *v, int n, double p)
{
	bench_median(v, n); /* sorts */
	int i = (int)(p * (n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

/* Wait until the mirror shows @key = @val (put at revision @rev), by
 * shmreg_await, or with @spin by polling the revision; the time it did. */
static uint64_t wait_visible(shmreg_t *r, const char *key, const char *val,
			     int64_t rev, bool spin)
{
	char got[32];
	ssize_t n;
	uint64_t vis, deadline = bench_now_ns() + 5000000000ull;

	if (spin) {
		while (shmreg_revision(r) < (uint64_t)rev) {
			if (bench_now_ns() > deadline)
				die("the mirror never showed a put");
			bench_pause();
		}
		vis = bench_now_ns();
		n = shmreg_get(r, key, strlen(key), got, sizeof(got), NULL);
	} else {
		n = shmreg_await(r, key, strlen(key), got, sizeof(got), NULL,
				 5000000000ll);
		vis = bench_now_ns();
		if (n == -ETIMEDOUT)
			die("the mirror never showed a put");
		if (n < 0)
			die("shmreg_await on the mirror failed");
	}
	if (n != (ssize_t)strlen(val) || memcmp(got, val, (size_t)n))
		die("the mirror holds a wrong value");
	return vis;
}

static double get_ns(shmreg_t *r, int nkeys, int iters)
{
	char k[32], v[64];
	uint64_t s = 88172645463325252ull, t0;

	t0 = bench_now_ns();
	for (int i = 0; i < iters; i++) {
		snprintf(k, sizeof(k), "k%d", (int)(bench_rand(&s) % (uint64_t)nkeys));
		if (shmreg_get(r, k, strlen(k), v, sizeof(v), NULL) < 0)
			die("get of a mirrored key failed");
	}
	return (double)(bench_now_ns() - t0) / iters;
}

int main(int argc, char **argv)
{
	const char *bin = NULL;
	bool quick = false, spin = false;
	int nsamp = 2000, nput = 300, giters = 1000000;
	double *mir, *etw, s;
	char k[32], v[32], la[128] = "?";
	pthread_t wthr;
	shmreg_t *r, *lr;
	shmreg_writer_t *lw;
	CURL *h;
	FILE *f;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--spin"))
			spin = true;
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			nsamp = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--shmregd") && i + 1 < argc)
			bin = argv[++i];
	}
	if (quick) {
		nsamp = 30;
		nput = 30;
		giters = 20000;
	}
	if (nsamp < 1 || nsamp > (int)REVTAB / 2) {
		fprintf(stderr, "bench_mirror: --samples: 1 to %u\n",
			REVTAB / 2);
		return 2;
	}
	if (access("/usr/bin/etcd", X_OK)) {
		printf("SKIP: /usr/bin/etcd not installed\n");
		return 77;
	}
	bin = bench_find_shmregd(bin);
	if (bench_mkdir(tmpdir, sizeof(tmpdir), "mirror"))
		die("scratch directory");
	setenv("SHMREG_DIR", tmpdir, 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	start_etcd();
	h = curl_easy_init();
	for (int i = 0; i < NMEMBERS; i++) {
		int t;

		for (t = 0; t < 200 && gw_put(h, i, "probe", "x") <= 0; t++)
			usleep(100000);
		if (t == 200)
			die("etcd cluster did not come up");
	}
	/* the probes' keep-alive connections must not leak into shmregd */
	curl_easy_cleanup(h);
	start_daemon(bin);
	h = curl_easy_init();
	if (shmreg_open("benchm", 0, &r) < 0)
		die("open the mirror's registry");
	pthread_create(&wthr, NULL, watch_main, NULL);
	/* etcd's first message: the watch exists, events will follow */
	for (uint64_t t0 = bench_now_ns(); !atomic_load(&wt.created);
	     usleep(1000))
		if (bench_now_ns() - t0 > 10000000000ull)
			die("etcd's watch was not created within 10 s");

	/* 1. ack-to-visibility, both sides from the same acknowledgement */
	mir = calloc((size_t)nsamp, sizeof(*mir));
	etw = calloc((size_t)nsamp, sizeof(*etw));
	for (int i = 0; i < nsamp; i++) {
		uint64_t ack, vis, ew, deadline;
		int64_t rev;

		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		rev = gw_put(h, 0, k, v);
		ack = bench_now_ns();
		if (rev <= 0)
			die("put to the gateway failed");
		deadline = ack + 5000000000ull;
		vis = wait_visible(r, k, v, rev, spin);
		while (!(ew = watch_time(rev))) {
			if (bench_now_ns() > deadline)
				die("etcd's watch never delivered a put");
			usleep(20);
		}
		mir[i] = vis > ack ? (double)(vis - ack) / 1000 : 0;
		etw[i] = ew > ack ? (double)(ew - ack) / 1000 : 0;
	}
	double m50 = pct(mir, nsamp, 0.5), m99 = pct(mir, nsamp, 0.99);
	double e50 = pct(etw, nsamp, 0.5), e99 = pct(etw, nsamp, 0.99);

	/* 2. get latency: the mirror's segment vs a local registry */
	if (shmreg_writer_open("benchl", NULL, &lw) < 0 ||
	    shmreg_open("benchl", 0, &lr) < 0)
		die("local registry");
	for (int i = 0; i < nsamp; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		shmreg_writer_put(lw, k, strlen(k), v, strlen(v), NULL);
	}
	/* alternating rounds, the median of each: both warm, both under
	 * the same background load */
	double gl[5], gm[5];

	for (int i = 0; i < 5; i++) {
		gl[i] = get_ns(lr, nsamp, giters / 5);
		gm[i] = get_ns(r, nsamp, giters / 5);
	}
	double g_local = bench_median(gl, 5), g_mirror = bench_median(gm, 5);

	/* 3. sequential puts: through the mirror vs the gateway directly */
	shmreg_client_t *c;
	uint64_t t0;

	if (shmreg_connect(sock, "benchm", &c) < 0)
		die("connect to shmregd");
	t0 = bench_now_ns();
	for (int i = 0; i < nput; i++) {
		snprintf(k, sizeof(k), "t%d", i);
		if (shmreg_put(c, k, strlen(k), "x", 1, NULL) <= 0)
			die("put through the mirror failed");
		/* read-your-writes: in the segment when the put returns */
		if (shmreg_get(r, k, strlen(k), v, sizeof(v), NULL) != 1)
			die("own write not visible on return");
	}
	double mir_ps = nput / ((double)(bench_now_ns() - t0) / 1e9);
	shmreg_disconnect(c);
	t0 = bench_now_ns();
	for (int i = 0; i < nput; i++) {
		snprintf(k, sizeof(k), "u%d", i);
		if (gw_put(h, 0, k, "x") <= 0)
			die("put to the gateway failed");
	}
	double gw_ps = nput / ((double)(bench_now_ns() - t0) / 1e9);

	atomic_store(&wt.stop, true);
	pthread_join(wthr, NULL);
	curl_easy_cleanup(h);
	shmreg_close(r);
	shmreg_close(lr);
	shmreg_writer_close(lw);
	stop_all();
	curl_global_cleanup();

	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (!fgets(la, sizeof(la), f))
			strcpy(la, "?");
		fclose(f);
		la[strcspn(la, "\n")] = 0;
	}
	printf("loadavg: %s\n", la);
	printf("ack-to-visibility: %d samples, mirror side by %s\n", nsamp,
	       spin ? "spinning on shmreg_revision" : "shmreg_await");
	bench_table_head("shmregd mirror of a 3-member loopback etcd cluster");
	bench_rowf("ack-to-visibility, mirror p50 (us)", m50, "%.0f", "", -1);
	bench_rowf("ack-to-visibility, mirror p99 (us)", m99, "%.0f", "", -1);
	bench_rowf("ack-to-delivery, etcd watch p50 (us)", e50, "%.0f", "", -1);
	bench_rowf("ack-to-delivery, etcd watch p99 (us)", e99, "%.0f", "", -1);
	s = m99 - e99;
	bench_rowf("mirror p99 - etcd watch p99 (us)", s, "%.0f", "<= 2000",
		   s <= 2000);
	bench_rowf("get, local registry (ns)", g_local, "%.0f", "", -1);
	bench_rowf("get, mirror's segment (ns)", g_mirror, "%.0f", "", -1);
	bench_rowf("get mirror / local", g_mirror / g_local, "%.2fx",
		   "~1x (same path)", -1);
	bench_rowf("puts/s through the mirror (1 client)", mir_ps, "%.0f", "",
		   -1);
	bench_rowf("puts/s to the gateway directly", gw_ps, "%.0f", "", -1);
	bench_rowf("mirror / gateway", mir_ps / gw_ps, "%.2fx", "", -1);
	printf("# key: %.0f\n", m99);
	free(mir);
	free(etw);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * replay.c - read a data directory back: pick the snapshot, check every
 * file, then feed their records to a sink (the writer's segment on open,
 * the in-memory map of a snapshot being made).
 *
 * How it works.  The state is the newest valid snapshot snap.S plus the
 * logs log.S, log.S+1, ... in order (with no snapshot: from log.1).  Pass
 * one checks everything before anything is applied:
 *
 *   - snapshots, newest first: header, every record, trailer; the first
 *     that validates is the base.  A corrupt one is reported and the
 *     previous one tried (its logs are kept for this: see snapshot.c);
 *   - the logs from the base on must be consecutive; each is scanned
 *     record by record.  A record that fails (bad magic, length, checksum,
 *     fields) at offset O of the last log is a torn tail when no valid
 *     record starts at any 8-byte boundary after O: the bytes from O are
 *     dropped (and counted).  Anywhere else, or with a valid record after
 *     it, it is corruption: refused with -EBADMSG naming file and offset,
 *     unless PREPLAY_KEEP_PREFIX, which ends the history at O.  A bad
 *     record inside zeros that reach a page end is a machine crash's
 *     unsynced tail (unsynced_tail below): the history ends at O without
 *     an option, in the last log (in every log with
 *     PREPLAY_UNSYNCED_LOGS), the bytes from O set aside.  Zeros
 *     from O to the end of the file are not damage but the log's unused
 *     allocation (a writer that did not close): the log ends at O.
 *
 * Pass two applies the snapshot's records and then the logs' up to their
 * valid ends.
 *
 * Bounds.  Files are mapped read-only and every access is checked against
 * the mapping's size (prec_decode never reads past what it is given).  The
 * scan advances by at least 8 bytes per step; the search for a valid
 * record after a bad one looks at each 8-byte boundary once and hashes at
 * most one record length there, so a file of F bytes costs O(F) for
 * ordinary damage and O(F * PREC_MAX / 8) at worst for crafted input.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "hash.h"
#include "persist.h"

struct pfile {
	uint64_t seq;
	const uint8_t *p;
	size_t size;
	size_t start, valid_end; /* records in [start, valid_end) */
	bool sorted;             /* a version 2 snapshot: roots by hash */
};

struct pfiles {
	uint64_t *logs, *snaps;
	size_t nlogs, nsnaps, caplogs, capsnaps;
};

static int add_seq(uint64_t **v, size_t *n, size_t *cap, uint64_t seq)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		uint64_t *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = seq;
	return 0;
}

static int cmp_seq(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* "PREFIX" followed by exactly 16 lower-case hex digits. */
bool pname_parse(const char *name, const char *prefix, uint64_t *seq)
{
	size_t pl = strlen(prefix);
	uint64_t v = 0;

	if (strncmp(name, prefix, pl) || strlen(name) != pl + 16)
		return false;
	for (const char *c = name + pl; *c; c++) {
		int d = *c >= '0' && *c <= '9' ? *c - '0'
			: *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;

		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*seq = v;
	return v != 0;
}

static int list_dir(int dfd, struct pfiles *f)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	DIR *d;
	int rc = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (rc == 0 && (e = readdir(d))) {
		uint64_t seq;

		if (pname_parse(e->d_name, "log.", &seq))
			rc = add_seq(&f->logs, &f->nlogs, &f->caplogs, seq);
		else if (pname_parse(e->d_name, "snap.", &seq))
			rc = add_seq(&f->snaps, &f->nsnaps, &f->capsnaps, seq);
	}
	closedir(d);
	if (f->nlogs)
		qsort(f->logs, f->nlogs, sizeof(uint64_t), cmp_seq);
	if (f->nsnaps)
		qsort(f->snaps, f->nsnaps, sizeof(uint64_t), cmp_seq);
	return rc;
}

static int map_file(int dfd, const char *fmt, uint64_t seq, struct pfile *pf)
{
	char name[64];
	struct stat st;
	int fd;

	memset(pf, 0, sizeof(*pf));
	pf->seq = seq;
	snprintf(name, sizeof(name), fmt, (unsigned long long)seq);
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EBADMSG;
	}
	pf->size = (size_t)st.st_size;
	if (pf->size) {
		void *m = mmap(NULL, pf->size, PROT_READ, MAP_PRIVATE, fd, 0);

		if (m == MAP_FAILED) {
			close(fd);
			return -errno;
		}
		pf->p = m;
	}
	close(fd);
	return 0;
}

static void unmap_file(struct pfile *pf)
{
	if (pf->p)
		munmap((void *)pf->p, pf->size);
	pf->p = NULL;
}

void psnap_header(uint8_t out[PSNAP_HDR], uint64_t seq, uint64_t rev,
		  uint64_t count)
{
	uint32_t magic = PSNAP_MAGIC, version = PSNAP_VERSION;
	uint64_t check;

	memset(out, 0, PSNAP_HDR);
	memcpy(out, &magic, 4);
	memcpy(out + 4, &version, 4);
	memcpy(out + 8, &seq, 8);
	memcpy(out + 16, &rev, 8);
	memcpy(out + 24, &count, 8);
	check = XXH3_64bits(out, 40);
	memcpy(out + 40, &check, 8);
}

void psnap_trailer(uint8_t out[PSNAP_TRAILER], const uint8_t hdr[PSNAP_HDR],
		   uint64_t count)
{
	uint32_t magic = PSNAP_END;
	uint64_t check;

	memset(out, 0, PSNAP_TRAILER);
	memcpy(out, &magic, 4);
	memcpy(out + 8, &count, 8);
	check = XXH3_64bits_withSeed(out, 16, rd64(hdr + 40));
	memcpy(out + 16, &check, 8);
}

/* Is there a valid record at an 8-byte boundary after @off? */
static bool valid_after(const struct pfile *pf, size_t off)
{
	struct prec r;

	for (size_t o = (off + 8) & ~(size_t)7; o + PREC_HDR <= pf->size;
	     o += 8)
		if (prec_decode(pf->p + o, pf->size - o, &r) > 0)
			return true;
	return false;
}

/* Are bytes [@off, size) of @pf all zero?  (A log's allocated, unused
 * tail: log_write.c allocates ahead and cuts the file only at close.) */
static bool zero_tail(const struct pfile *pf, size_t off)
{
	for (size_t o = off; o < pf->size; o++)
		if (pf->p[o])
			return false;
	return true;
}

/* What pass one saw of a version 2 snapshot, to check its order. */
struct sorder {
	bool children;           /* a record with a parent came */
	bool have;               /* a root came: the last one's */
	uint64_t hash;           /* hash and key */
	const uint8_t *key;
	uint32_t klen;
};

/* Does @r keep a version 2 snapshot's order after what @o saw?  Roots
 * first, strictly ascending (so no key twice among them), then the
 * entries with a parent. */
static bool in_order(struct sorder *o, const struct prec *r)
{
	uint64_t h;

	if (r->plen) {
		o->children = true;
		return true;
	}
	if (o->children)
		return false;
	h = shm_hash(r->key, r->klen);
	if (o->have && psnap_order_cmp(o->hash, o->key, o->klen, h, r->key,
				       r->klen) >= 0)
		return false;
	*o = (struct sorder){ .have = true, .hash = h, .key = r->key,
			      .klen = r->klen };
	return true;
}

/*
 * A machine crash's unsynced tail.  A log is written through a shared
 * mapping (or pwrite) into space allocated ahead, which reads back as zeros
 * until it is written back, and the kernel writes dirty pages back in any
 * order and at any moment.  So after the last completed fdatasync a crash
 * can leave pages that are all zero, or that hold an older image of
 * themselves (the log only appends: a prefix of their bytes, then zeros),
 * beside later pages that were written back.  No fdatasync completed after
 * such a page's missing bytes were written (it would have written them
 * back), and every later record was written after them: nothing from there
 * on was synced, so nothing from there on was promised (docs/persistence.md).
 *
 * The failing record at @off is such a stretch when, inside its extent
 * (the length its header claims, else its header), bytes are zero from
 * some offset up to the end of their page, and that offset is the
 * record's start (its header never written back: a real record starts
 * with its magic) or the run is at least UNSYNCED_MIN bytes long (more
 * than a record header's zero fields, so a damaged record whose page
 * merely ends in its padding or a zero field is not taken for one).
 * Damage that does not look so (flipped bits, garbage, short zero runs) is
 * still corruption.  What the rule cannot tell apart is a synced page
 * that the device itself lost to zeros.
 *
 * Cost: each page of the extent is read backwards from its end until a
 * nonzero byte, so O(PREC_MAX) at most, once per log.
 */
#define UNSYNCED_PAGE 4096u
#define UNSYNCED_MIN  64u

static bool unsynced_tail(const struct pfile *pf, size_t off, size_t *zero_at)
{
	size_t reach = PREC_HDR, end;

	if (off + 8 <= pf->size && rd32(pf->p + off) == PREC_MAGIC) {
		uint32_t len = rd32(pf->p + off + 4);

		if (len >= PREC_HDR && len <= PREC_MAX)
			reach = len;
	}
	end = reach < pf->size - off ? off + reach : pf->size;
	for (size_t pg = off & ~(size_t)(UNSYNCED_PAGE - 1); pg < end;
	     pg += UNSYNCED_PAGE) {
		size_t pe = pf->size - pg > UNSYNCED_PAGE ? pg + UNSYNCED_PAGE
							  : pf->size;
		size_t z = pe;

		while (z > off && z > pg && !pf->p[z - 1])
			z--;
		if (z < pe && z < end && (z == off || pe - z >= UNSYNCED_MIN)) {
			*zero_at = z;
			return true;
		}
	}
	return false;
}

/* Scan pf's records from pf->start; pf->valid_end is where they stop.
 * Returns 0 when they run to the end of the file, else the offset of the
 * first bad record (> 0): invalid, or out of @ord's order (unless NULL).
 * Counts into *@rev_max, *@n. */
static size_t scan(struct pfile *pf, uint64_t *rev_max, uint64_t *n,
		   uint64_t *puts, uint64_t *big, struct sorder *ord)
{
	size_t o = pf->start;
	struct prec r;

	while (o < pf->size) {
		long got = prec_decode(pf->p + o, pf->size - o, &r);

		if (got <= 0) {
			if (zero_tail(pf, o)) {
				pf->valid_end = o;
				return 0; /* the end of the log */
			}
			break;
		}
		if (ord && (r.op != PREC_PUT || !in_order(ord, &r)))
			break;
		if (r.rev > *rev_max)
			*rev_max = r.rev;
		(*n)++;
		*puts += r.op == PREC_PUT;
		/* what cannot be inline in its slot needs arena bytes: about
		 * the record's size, plus 8 B per attribute posting */
		if (r.op == PREC_PUT && (r.klen + r.vlen > PREC_INLINE_MAX ||
					 r.nattrs || r.plen))
			*big += (uint64_t)got + 8 * r.nattrs;
		o += (size_t)got;
	}
	pf->valid_end = o;
	return o < pf->size ? o : 0;
}

/* A snapshot: header, PUT records only (a version 2 one in its order),
 * trailer at the very end. */
static int check_snapshot(struct pfile *pf, uint64_t *rev, uint64_t *count,
			  uint64_t *arena, size_t *bad, const char **why)
{
	const uint8_t *t;
	uint8_t want[PSNAP_TRAILER];
	uint64_t n = 0, maxrev = 0, puts = 0, big = 0;
	struct sorder ord = { 0 };
	uint32_t version;
	size_t end;

	*bad = 0;
	if (pf->size < PSNAP_HDR + PSNAP_TRAILER)
		return -EBADMSG;
	version = rd32(pf->p + 4);
	if (rd32(pf->p) != PSNAP_MAGIC ||
	    (version != PSNAP_VERSION &&
	     version != PSNAP_VERSION_PARENTS_FIRST) ||
	    rd64(pf->p + 8) != pf->seq ||
	    XXH3_64bits(pf->p, 40) != rd64(pf->p + 40))
		return -EBADMSG;
	pf->sorted = version == PSNAP_VERSION;
	*rev = rd64(pf->p + 16);
	*count = rd64(pf->p + 24);
	pf->start = PSNAP_HDR;
	end = pf->size - PSNAP_TRAILER;
	/* scan only up to the trailer */
	{
		struct pfile body = *pf;

		body.size = end;
		*bad = scan(&body, &maxrev, &n, &puts, &big,
			    pf->sorted ? &ord : NULL);
		*arena = big;
		pf->valid_end = body.valid_end;
		if (*bad) {
			struct prec r;

			if (prec_decode(pf->p + *bad, end - *bad, &r) > 0)
				*why = r.op != PREC_PUT ? "not a PUT record"
				       : "records out of order";
			return -EBADMSG;
		}
	}
	t = pf->p + end;
	psnap_trailer(want, pf->p, *count);
	if (n != *count || puts != n || maxrev > *rev ||
	    *rev > PREC_REV_MAX || memcmp(t, want, PSNAP_TRAILER)) {
		*bad = end;
		return -EBADMSG;
	}
	return 0;
}

/* Pass two: the records pass one checked in [start, valid_end) of the
 * same private read-only mapping, so they are decoded without checking
 * again (the checksum is most of a record's decoding cost).  A sorted
 * snapshot's roots without attributes go to the sink's bulk insert. */
static int feed(const struct pfile *pf, const struct psink *sink,
		struct preplay_res *res)
{
	struct prec r;

	for (size_t o = pf->start; o < pf->valid_end;) {
		size_t size;
		int rc;

		prec_fields(pf->p + o, &r);
		size = prec_size(r.klen, r.plen, r.alen, r.vlen);
		if (size > pf->valid_end - o)
			return -EBADMSG; /* cannot happen: pass one checked */
		if (pf->sorted && sink->load_root && !r.plen && !r.nattrs) {
			rc = sink->load_root(sink->ctx, &r,
					     shm_hash(r.key, r.klen));
			if (rc < 0)
				return rc;
		} else if (r.op != PREC_MARK) {
			rc = sink->apply(sink->ctx, &r, pf->p + o, size);
			if (rc < 0)
				return rc;
		}
		res->records++;
		o += size;
	}
	return 0;
}

struct plan {
	struct pfile snap;
	struct pfile *logs;
	size_t nlogs;
	uint64_t entries, arena;   /* what the sink should expect at most */
};

/* The history ends at offset @off of log @i of @pl: the later logs are
 * not replayed (persist.c sets the rest aside: cut_history). */
static void end_history(struct plan *pl, size_t i, size_t off,
			struct preplay_res *res)
{
	struct pfile *pf = &pl->logs[i];

	res->cut_seq = pf->seq;
	res->cut_off = off;
	pf->valid_end = off;
	for (size_t j = i + 1; j < pl->nlogs; j++)
		unmap_file(&pl->logs[j]);
	pl->nlogs = i + 1;
}

/* Pass one for the logs of @plan: header, records, torn tail, a machine
 * crash's unsynced tail. */
static int check_logs(const char *dir, struct plan *pl, unsigned flags,
		      struct preplay_res *res)
{
	for (size_t i = 0; i < pl->nlogs; i++) {
		struct pfile *pf = &pl->logs[i];
		bool last = i + 1 == pl->nlogs;
		uint64_t n = 0, puts = 0;
		size_t bad, zero_at;
		uint8_t want[PLOG_HDR];

		plog_header(want, pf->seq);
		res->log_bytes += pf->size;
		if (pf->size < PLOG_HDR && last && (flags & PREPLAY_TORN_TAIL)) {
			/* cut off while it was being created */
			res->torn = true;
			res->torn_bytes = pf->size;
			res->torn_off = 0;
			pf->start = pf->valid_end = pf->size;
			continue;
		}
		if (pf->size < PLOG_HDR || memcmp(pf->p, want, PLOG_HDR)) {
			bad = 0;
			pf->start = pf->valid_end = 0;
			goto damaged; /* a header never written back, or damage */
		}
		pf->start = PLOG_HDR;
		bad = scan(pf, &res->max_rev, &n, &puts, &pl->arena, NULL);
		pl->entries += puts;
		if (!bad)
			continue;
		if (last && (flags & PREPLAY_TORN_TAIL) && !valid_after(pf, bad)) {
			res->torn = true;
			res->torn_bytes = pf->size - bad;
			res->torn_off = bad;
			continue;
		}
damaged:
		if ((flags & (last ? PREPLAY_TORN_TAIL : PREPLAY_UNSYNCED_LOGS)) &&
		    unsynced_tail(pf, bad, &zero_at)) {
			fprintf(stderr, "shmreg: %s/" PLOG_NAME ": zeros from "
				"offset %zu to a page end inside the %s at "
				"offset %zu: a tail never synced before a "
				"machine crash; keeping the history before it "
				"(%zu bytes from there set aside)\n", dir,
				(unsigned long long)pf->seq, zero_at,
				bad ? "record" : "header", bad,
				pf->size - bad);
			end_history(pl, i, bad, res);
			return 0;
		}
		if (flags & PREPLAY_KEEP_PREFIX) {
			fprintf(stderr, "shmreg: %s/" PLOG_NAME ": corrupt at "
				"offset %zu: keeping the history before it\n",
				dir, (unsigned long long)pf->seq, bad);
			end_history(pl, i, bad, res);
			return 0;
		}
		fprintf(stderr, "shmreg: %s/" PLOG_NAME ": corrupt at offset "
			"%zu, followed by %s; refusing to start (the option "
			"to keep the valid prefix discards what follows)\n",
			dir, (unsigned long long)pf->seq, bad,
			last ? "valid records" : "more logs");
		return -EBADMSG;
	}
	return 0;
}

/* Pick the base snapshot; map the logs it needs. */
static int make_plan(int dfd, const char *dir, const struct pfiles *f,
		     uint64_t upto, struct plan *pl, struct preplay_res *res)
{
	uint64_t first = 1, count = 0, rev = 0, arena = 0;
	size_t k, n;
	int rc;

	for (k = f->nsnaps; k-- > 0;) {
		const char *why = "a bad header, record or trailer";
		size_t bad = 0;

		if (f->snaps[k] >= upto)
			continue;
		rc = map_file(dfd, PSNAP_NAME, f->snaps[k], &pl->snap);
		if (rc == 0)
			rc = check_snapshot(&pl->snap, &rev, &count, &arena,
					    &bad, &why);
		if (rc == 0) {
			first = f->snaps[k];
			res->base_seq = first;
			res->snap_bytes = pl->snap.size;
			if (rev > res->max_rev)
				res->max_rev = rev;
			pl->entries = count;
			pl->arena = arena;
			break;
		}
		unmap_file(&pl->snap);
		if (rc != -EBADMSG)
			return rc;
		fprintf(stderr, "shmreg: %s/" PSNAP_NAME ": corrupt at offset "
			"%zu (%s); falling back to the one before it\n", dir,
			(unsigned long long)f->snaps[k], bad, why);
	}
	pl->logs = calloc(f->nlogs ? f->nlogs : 1, sizeof(*pl->logs));
	if (!pl->logs)
		return -ENOMEM;
	for (n = 0, k = 0; k < f->nlogs; k++) {
		if (f->logs[k] < first || f->logs[k] >= upto)
			continue;
		if (f->logs[k] != first + n) {
			fprintf(stderr, "shmreg: %s/" PLOG_NAME " is missing "
				"(the history from %s needs it)\n", dir,
				(unsigned long long)(first + n),
				res->base_seq ? "the snapshot" : "the start");
			return -EBADMSG;
		}
		rc = map_file(dfd, PLOG_NAME, f->logs[k], &pl->logs[n]);
		if (rc < 0)
			return rc;
		pl->nlogs = ++n;
	}
	if (!res->base_seq && f->nsnaps && !n) {
		fprintf(stderr, "shmreg: %s: no valid snapshot\n", dir);
		return -EBADMSG;
	}
	res->last_seq = n ? pl->logs[n - 1].seq : 0;
	return 0;
}

static void plan_free(struct plan *pl)
{
	unmap_file(&pl->snap);
	for (size_t i = 0; i < pl->nlogs; i++)
		unmap_file(&pl->logs[i]);
	free(pl->logs);
}

int pdir_replay(int dfd, const char *dir, uint64_t upto, unsigned flags,
		const struct psink *sink, struct preplay_res *res)
{
	struct pfiles f = { 0 };
	struct plan pl = { 0 };
	int rc;

	memset(res, 0, sizeof(*res));
	rc = list_dir(dfd, &f);
	if (rc == 0)
		rc = make_plan(dfd, dir, &f, upto, &pl, res);
	if (rc == 0)
		rc = check_logs(dir, &pl, flags, res);
	if (rc == 0 && sink->begin)
		rc = sink->begin(sink->ctx, pl.entries, pl.arena);
	if (rc == 0 && pl.snap.p)
		rc = feed(&pl.snap, sink, res);
	for (size_t i = 0; rc == 0 && i < pl.nlogs; i++)
		rc = feed(&pl.logs[i], sink, res);
	plan_free(&pl);
	free(f.logs);
	free(f.snaps);
	return rc;
}

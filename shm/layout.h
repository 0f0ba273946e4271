/* SPDX-License-Identifier: MIT */
/*
 * layout.h - every struct that lives in a shmreg segment, and nothing else.
 *
 * A segment is one file (on tmpfs: /dev/shm/shmreg.NAME) that the writer
 * creates and maps read-write and readers map PROT_READ:
 *
 *   +-----------------+ 0
 *   | header (4 KiB)  |  identity lines, commit line, stats line, ring line,
 *   |                 |  undo record
 *   +-----------------+ index_off  (= 4096)
 *   | index           |  index_cap slots of 128 B, a power of two (open
 *   |                 |  addressing, linear probing, backward-shift
 *   |                 |  deletion, no tombstones)
 *   +-----------------+ ring_off
 *   | change ring     |  ring_events records of 32 B
 *   | ring key bytes  |  ring_key_bytes bytes (keys of the ring records)
 *   +-----------------+ attr_off   (64-byte aligned)
 *   | attribute index |  attr_cap pair slots of 32 B, a power of two (open
 *   |                 |  addressing, linear probing, backward shift): one
 *   |                 |  per distinct name=value pair, each pointing to
 *   |                 |  the pair's posting array in the arena
 *   +-----------------+ arena_off
 *   | object arena    |  out-of-line objects and posting arrays, size
 *   |                 |  classes, FIFO reuse
 *   +-----------------+ segment_size
 *
 * The geometry (every *_off and size) is fixed when the segment is created
 * and never changes: growth builds a new segment and hands off to it (see
 * writer/handoff.c).  Readers copy and validate the geometry once, at map
 * time, against the file size, and never reread it.
 *
 * All multi-byte fields are little-endian host order; the magic reads
 * differently on a host of the other byte order, so such a file is refused
 * as -EPROTO rather than misread.
 *
 * Shared atomics are at most 8 bytes and lock-free: a 16-byte atomic load
 * may be a cmpxchg16b, which writes and so faults on a PROT_READ mapping.
 */
#ifndef SHM_LAYOUT_H
#define SHM_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

/* "shmreg" 0x00 0x5e as little-endian bytes; byte-swapped on the other order */
#define SHM_MAGIC        UINT64_C(0x5e00676572686d73)
#define SHM_VERSION      4u
#define SHM_HEADER_SIZE  4096u
#define SHM_LINE         64u

#define SHM_SLOT_SIZE    128u
#define SHM_SLOT_INLINE  80u   /* key + value bytes that fit in a slot */
#define SHM_OBJ_HDR      32u
#define SHM_OBJ_ALIGN    16u
#define SHM_RING_REC     32u
#define SHM_PAIR_SIZE    32u   /* attribute index slot */
#define SHM_RICH_HDR     16u   /* after shm_obj in a SHM_KIND_RICH object */

/* Index load limit: the writer grows before entries exceed 3/4 of the slots.
 * The index has a power-of-two size, so after a doubling it is 3/8 full and
 * a hit costs 1.2-2.5 slots (1.46 at the 0.48 load of a million entries
 * pre-sized). */
#define SHM_LOAD_NUM     3u
#define SHM_LOAD_DEN     4u

/* No entry is ever further than SHM_PROBE_LIMIT slots from its home slot:
 * the writer refuses an insert that would put one further (-ENOSPC; with
 * XXH3 at a load of at most 3/4 this takes a hash-flooding attack).  So a
 * reader's walk is bounded by this constant, never by a number read from
 * the segment. */
#define SHM_PROBE_LIMIT  1024u

/* shm_hdr.state */
#define SHM_STATE_OPEN     1u  /* a writer serves this segment */
#define SHM_STATE_CLOSED   2u  /* the writer closed it cleanly */
#define SHM_STATE_RETIRED  3u  /* replaced: the name now holds a newer one */

/* shm_slot.kind */
#define SHM_KIND_INLINE  1u    /* key then value in slot.data */
#define SHM_KIND_EXTERN  2u    /* slot.data holds a shm_ext_ref */
#define SHM_KIND_RICH    3u    /* slot.data holds a shm_ext_ref to an object
                                * with attributes (shm_obj + shm_rich) */

/* ring record op */
#define SHM_OP_PUT 1u
#define SHM_OP_DEL 2u
/* A mirror of etcd (writer/revision.c) has revisions that are etcd's: */
#define SHM_OP_NOP  3u /* no change of this registry at this revision (klen 0) */
#define SHM_OP_MANY 4u /* several changes at one revision (klen 0): a
                        * watcher cannot stream them and must resync */

/*
 * Header.  Lines are grouped by who writes them and how often, so that a
 * reader's per-call check (state, on the identity line) never shares a cache
 * line with what the writer stores on every commit: a line written per
 * commit would cost every reader a coherence miss per get under writes.
 */
struct shm_hdr {
	/* identity line: written once at creation, then only state changes */
	uint64_t magic;            /* SHM_MAGIC; last field written at creation */
	uint32_t version;          /* SHM_VERSION */
	uint32_t header_size;      /* SHM_HEADER_SIZE */
	_Atomic uint32_t state;    /* SHM_STATE_*; OPEN -> CLOSED | RETIRED,
	                            * CLOSED -> RETIRED; never back */
	uint32_t slot_size;        /* SHM_SLOT_SIZE */
	uint64_t segment_size;     /* bytes of the file; the file never shrinks */
	uint64_t index_off;        /* = SHM_HEADER_SIZE */
	uint64_t index_cap;        /* slots: a power of two >= 8; a key's home
	                            * slot is its hash's top log2(cap) bits */
	uint64_t ring_off;         /* first ring record */
	uint32_t ring_events;      /* records, a power of two */
	uint32_t ring_key_bytes;   /* key byte ring size, a power of two */
	uint64_t arena_off;        /* first arena byte, SHM_OBJ_ALIGN aligned */

	/* (identity continues on the second line) */
	uint64_t arena_size;       /* arena bytes */
	uint64_t generation;       /* handoffs of this registry so far; +1 per
	                            * new segment */
	int32_t  writer_pid;       /* pid of the writer that created it */
	uint32_t pad0;
	uint64_t writer_start;     /* that process's start time (clock ticks
	                            * since boot, /proc/PID/stat field 22):
	                            * the pid test of shm/liveness.h */
	int64_t  created_ns;       /* CLOCK_REALTIME at creation */
	uint64_t attr_off;         /* first attribute index slot */
	uint64_t attr_cap;         /* attribute index slots: a power of two
	                            * >= 8; a pair's home slot is its hash's
	                            * top log2(attr_cap) bits */

	/* commit line: written on every commit */
	_Atomic uint32_t commit_seq;   /* seqcount over a whole commit (batch):
	                                * odd while one is being applied */
	_Atomic uint32_t shift_seq;    /* seqcount bumped around every move of
	                                * an entry between slots (backward shift
	                                * on delete); a reader that found nothing
	                                * re-checks it: see shm/index.h */
	_Atomic uint64_t revision;     /* last committed revision; stored with
	                                * release after the commit's slots and
	                                * ring record */
	_Atomic uint32_t attr_shift_seq; /* shift_seq of the attribute index:
	                                  * odd around every move of a pair
	                                  * slot (writer/attrs.c) */
	uint32_t pad2a;
	uint8_t  pad2[SHM_LINE - 24];

	/* stats line: written by the writer on commits, read by shmreg_stats;
	 * also what a writer adopting a cleanly closed segment in place
	 * takes its bookkeeping from (writer/adopt.c), so each is exact at
	 * the end of every commit */
	_Atomic uint64_t entries;      /* live entries */
	_Atomic uint64_t bytes_used;   /* key + value bytes of live entries */
	_Atomic uint64_t arena_bump;   /* arena bytes handed out so far */
	_Atomic uint64_t arena_live;   /* block bytes of live arena objects */
	_Atomic uint64_t owned;        /* live entries with an owner pid */
	_Atomic uint64_t attr_pairs;   /* occupied attribute index slots */
	_Atomic uint64_t attr_postings; /* posting elements of the attribute
	                                 * index (one per entry and distinct
	                                 * pair it carries); 0 in a segment
	                                 * last committed to by a writer older
	                                 * than this field.  Advisory: nothing
	                                 * is sized from it */
	uint8_t  pad3[SHM_LINE - 56];

	/* ring line: the change ring's reservation cursor */
	_Atomic uint64_t ring_key_reserved; /* key byte ring bytes reserved so
	                                     * far (monotonic); stored before the
	                                     * bytes it covers are overwritten */
	_Atomic uint64_t ring_first_rev;    /* oldest revision the ring held
	                                     * when the segment was created (the
	                                     * ring may not reach back further,
	                                     * whatever its size) */
	uint8_t  pad4[SHM_LINE - 16];

	/* undo record: the writer's crash journal for one slot write.  Armed
	 * (undo_slot = index + 1) with whole contents for the slot - its old
	 * ones, or for the common put its new ones - before the slot is made
	 * odd, and left armed after it is even again (a clean close and a
	 * taker-over store 0).  A new writer
	 * that finds it armed for an odd slot writes the slot from it, so an
	 * entry whose change was cut off reads as its old or its new value,
	 * never torn.  The record's first word holds the tag in its high half
	 * and in its low half (a slot's seqcount) how to restore it:
	 * 0, whole; 1, whole but the slot's own create_rev if nonzero. */
	_Atomic uint64_t undo_slot;
	uint8_t  pad5[SHM_LINE - 8];
	_Atomic uint64_t undo_data[SHM_SLOT_SIZE / 8];

	/* writer identity line: written when a writer creates or adopts the
	 * segment (segment_claim), read by readers that test liveness */
	uint64_t lock_dev;         /* st_dev and st_ino of the lock file the */
	uint64_t lock_ino;         /* writer locked; 0: unknown.  A reader
	                            * finding another file at SEGMENT.lock
	                            * knows it is not the writer's lock */
	_Atomic int64_t writer_since_ns; /* CLOCK_REALTIME when the writer
	                            * process opened (or adopted) the
	                            * registry; kept across handoffs, so
	                            * now - this is the writer's uptime.  0:
	                            * unknown (an older writer) */
	uint8_t  pad6[SHM_LINE - 24];

	/* rate line: two samples (time, revision) of the commit stream, taken
	 * by the writer at a commit at most once per SHM_RATE_NS and guarded
	 * by rate_seq (shm/seqcount.h); [1] is the newer.  Readers derive
	 * commits per second from them (reader/stats.c); all 0: no sample
	 * yet.  Written on at most one commit per SHM_RATE_NS, so it costs
	 * readers no coherence traffic on the hot path. */
	_Atomic uint32_t rate_seq;
	uint32_t pad7;
	_Atomic int64_t  rate_ns[2];  /* CLOCK_REALTIME_COARSE of the sample */
	_Atomic uint64_t rate_rev[2]; /* the revision committed then */
};

/* Interval between two rate samples (the shortest interval a rate is
 * computed over). */
#define SHM_RATE_NS 1000000000LL

/*
 * Index slot: one entry, or empty (klen == 0).  Guarded by its own seqcount
 * (seq); every other field is written by the writer only inside a seq write
 * section and read by readers only as a copy validated by seq.
 */
struct shm_slot {
	_Atomic uint32_t seq;      /* even: stable; odd: being written */
	uint32_t tag;              /* low 32 bits of the key's XXH3-64 */
	uint16_t klen;             /* 1..SHMREG_KEY_MAX; 0 = empty slot */
	uint8_t  kind;             /* SHM_KIND_* */
	uint8_t  flags;            /* SHMREG_EPHEMERAL, ... */
	uint32_t vlen;             /* value bytes */
	uint64_t mod_rev;          /* revision of the last put; also the
	                            * generation an extern object must match */
	uint64_t create_rev;
	int64_t  expires_at_ns;    /* CLOCK_REALTIME; 0 = never */
	int32_t  owner_pid;        /* 0 = none */
	uint32_t hash_hi;          /* high 32 bits of the key's XXH3-64: with
	                            * tag the whole hash, so that the writer
	                            * moves and re-homes entries without
	                            * rehashing or reading their objects */
	uint8_t  data[SHM_SLOT_INLINE]; /* INLINE: key, value; EXTERN: ref */
};

/* slot.data of an EXTERN slot */
struct shm_ext_ref {
	uint64_t obj_off;          /* offset of the shm_obj from segment start */
	uint64_t obj_size;         /* its block size (size class) */
};

/*
 * Arena object: a key and value too large for a slot.  Written once when
 * allocated (seq odd during the write), never modified while referenced;
 * freed blocks are queued FIFO per size class and rewritten (seq odd again)
 * only when reused.  A reader that copied a slot follows obj_off, validates
 * the object with its seq, and accepts it only if mod_rev and hash match
 * the slot's: a reused block never passes for the old object.
 */
struct shm_obj {
	_Atomic uint32_t seq;
	uint32_t pad;              /* word 0 is the seqcount's alone */
	uint32_t klen;
	uint32_t vlen;
	uint64_t mod_rev;          /* = the referencing slot's mod_rev */
	uint64_t hash;             /* XXH3-64 of the key */
	/* key bytes, then value bytes */
};

/*
 * Object header extension of a SHM_KIND_RICH entry (one with attributes,
 * a parent, or both): the object is
 *
 *   shm_obj | shm_rich | key | value | attributes (alen) | parent (plen)
 *
 * The attributes are nattrs consecutive "name\0value\0" pairs (the bytes
 * shmreg_get_attrs returns), name 1..SHMREG_ATTR_NAME_MAX bytes without
 * '=', value 0..SHMREG_ATTR_VALUE_MAX bytes; the parent is the parent
 * entry's key (0 bytes: none).  nattrs == 0 requires alen == 0 and
 * plen > 0.  Guarded by the object's seq like the rest of the object.
 */
struct shm_rich {
	uint32_t alen;             /* attribute bytes */
	uint32_t nattrs;           /* 0..SHMREG_ATTRS_MAX pairs */
	uint32_t plen;             /* parent key bytes, 0..SHMREG_KEY_MAX */
	uint32_t pad;
};

/*
 * Attribute index slot: one distinct name=value pair (by the XXH3-64 of
 * the bytes "name=value"), or empty (count == 0).  Guarded by its own
 * seqcount, which also guards the first count elements of its posting
 * array: the writer appends to the array, and removes by moving the last
 * element into the hole, inside a write section of this slot.
 *
 * The posting array is an arena block of arr_size bytes (a size class):
 * a shm_obj header (seq, hash = the pair's hash; written under the
 * block's own seq whenever the block is taken for an array, so a reader
 * of the block's previous object retries), then arr_size / 8 - 4 u64
 * elements, each the XXH3-64 of the key of an entry carrying the pair.
 * A hash appears once per array even when two keys share it; readers
 * check every candidate entry's own attributes, so a shared hash (of
 * keys or of pairs) costs a look, never a wrong answer.
 */
struct shm_pair {
	_Atomic uint32_t seq;
	uint32_t count;            /* elements; 0 = empty slot */
	uint64_t hash;             /* XXH3-64 of "name=value" */
	uint64_t arr_off;          /* posting block, from segment start */
	uint64_t arr_size;         /* its block size */
};

/*
 * Change ring record for revision rev, at index rev & (ring_events - 1).
 * rev doubles as the record's seqcount: 0 while being written, then rev.
 * The key lives in the key byte ring at key_pos & (ring_key_bytes - 1),
 * never wrapping (the writer skips to the ring start instead).
 */
struct shm_ring_rec {
	_Atomic uint64_t rev;
	uint32_t op;               /* SHM_OP_PUT / _DEL / _NOP / _MANY */
	uint32_t klen;
	uint64_t key_pos;          /* position in the key byte ring (monotonic) */
	uint64_t hash;             /* XXH3-64 of the key */
};

_Static_assert(sizeof(struct shm_slot) == SHM_SLOT_SIZE, "slot is 128 B");
/* The slot's 64-bit words, which the writer stores and the inlined reads
 * load as little-endian words (the format's byte order): 0 {seq, tag},
 * 1 {klen, kind, flags, vlen}, 2 mod_rev, 3 create_rev, 4 expires_at_ns,
 * 5 {owner_pid, hash_hi}, then data. */
_Static_assert(offsetof(struct shm_slot, tag) == 4 &&
		       offsetof(struct shm_slot, klen) == 8 &&
		       offsetof(struct shm_slot, kind) == 10 &&
		       offsetof(struct shm_slot, flags) == 11 &&
		       offsetof(struct shm_slot, vlen) == 12 &&
		       offsetof(struct shm_slot, mod_rev) == 16 &&
		       offsetof(struct shm_slot, create_rev) == 24 &&
		       offsetof(struct shm_slot, expires_at_ns) == 32 &&
		       offsetof(struct shm_slot, owner_pid) == 40 &&
		       offsetof(struct shm_slot, hash_hi) == 44 &&
		       offsetof(struct shm_slot, data) == 48,
	       "slot words");
_Static_assert(offsetof(struct shm_slot, data) == SHM_SLOT_SIZE - SHM_SLOT_INLINE,
	       "inline area ends the slot");
_Static_assert(sizeof(struct shm_ext_ref) <= SHM_SLOT_INLINE, "ext ref fits");
_Static_assert(sizeof(struct shm_obj) == SHM_OBJ_HDR, "object header");
_Static_assert(offsetof(struct shm_obj, klen) == 8, "object fields after word 0");
_Static_assert(sizeof(struct shm_ring_rec) == SHM_RING_REC, "ring record");
_Static_assert(offsetof(struct shm_hdr, arena_size) == 72, "identity layout");
_Static_assert(offsetof(struct shm_hdr, attr_cap) == 2 * SHM_LINE - 8,
	       "attribute geometry ends the identity lines");
_Static_assert(offsetof(struct shm_hdr, attr_shift_seq) == 2 * SHM_LINE + 16,
	       "commit line");
_Static_assert(offsetof(struct shm_hdr, attr_pairs) == 3 * SHM_LINE + 40,
	       "stats line");
_Static_assert(sizeof(struct shm_rich) == SHM_RICH_HDR, "rich header");
_Static_assert(sizeof(struct shm_pair) == SHM_PAIR_SIZE, "pair slot");
_Static_assert((SHM_OBJ_HDR + SHM_RICH_HDR) % 8 == 0, "rich key aligned");
_Static_assert(offsetof(struct shm_hdr, lock_dev) == 8 * SHM_LINE,
	       "writer identity line");
_Static_assert(offsetof(struct shm_hdr, commit_seq) == 2 * SHM_LINE, "commit line");
_Static_assert(offsetof(struct shm_hdr, entries) == 3 * SHM_LINE, "stats line");
_Static_assert(offsetof(struct shm_hdr, ring_key_reserved) == 4 * SHM_LINE,
	       "ring line");
_Static_assert(offsetof(struct shm_hdr, undo_slot) == 5 * SHM_LINE, "undo line");
_Static_assert(offsetof(struct shm_hdr, undo_data) == 6 * SHM_LINE, "undo data");
_Static_assert(offsetof(struct shm_hdr, attr_postings) == 3 * SHM_LINE + 48,
	       "stats line");
_Static_assert(offsetof(struct shm_hdr, writer_since_ns) == 8 * SHM_LINE + 16,
	       "writer identity line");
_Static_assert(offsetof(struct shm_hdr, rate_seq) == 9 * SHM_LINE, "rate line");
_Static_assert(sizeof(struct shm_hdr) <= SHM_HEADER_SIZE, "header fits a page");

#endif /* SHM_LAYOUT_H */

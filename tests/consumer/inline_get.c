/* SPDX-License-Identifier: MIT */
/* Description: the inline get (shmreg_inline.h) built against an installed
 * shmreg, by each compiler install_consumer finds: constant key lengths of
 * 8 to 16 bytes, a hit with a full and with a partial buffer, a miss and a
 * value too long for the short get, each the library's answer too. */
#include <errno.h>
#include <shmreg.h>
#include <shmreg_writer.h>
#include <stdio.h>
#include <string.h>

static int fails;

static void expect(const char *what, ssize_t got, ssize_t want)
{
	if (got != want) {
		fprintf(stderr, "inline_get: %s: got %zd, want %zd\n", what, got,
			want);
		fails++;
	}
}

int main(void)
{
	shmreg_writer_opts_t o = { .flags = SHMREG_WRITER_TRUNCATE };
	shmreg_writer_t *w;
	shmreg_t *r;
	char v[64], big[200], buf[256];

	if (!SHMREG_INLINE_GET)
		printf("inline_get: this compiler does not inline the get\n");
	memset(v, 'v', sizeof(v));
	memset(big, 'b', sizeof(big));
	if (shmreg_writer_open("inline", &o, &w) < 0 ||
	    shmreg_writer_put(w, "inline/key/16byt", 16, v, 64, NULL) <= 0 ||
	    shmreg_writer_put(w, "nine/9key", 9, "short", 5, NULL) <= 0 ||
	    shmreg_writer_put(w, "id:00042", 8, v, 8, NULL) <= 0 ||
	    shmreg_writer_put(w, "inline/big/16byt", 16, big, 200, NULL) <= 0 ||
	    shmreg_open("inline", 0, &r) < 0) {
		fprintf(stderr, "inline_get: setup failed\n");
		return 1;
	}
	memset(buf, 0, sizeof(buf));
	expect("16-byte hit", shmreg_get(r, "inline/key/16byt", 16, buf, 64,
					 NULL), 64);
	expect("16-byte value", memcmp(buf, v, 64), 0);
	memset(buf, 0, sizeof(buf));
	expect("9-byte hit", shmreg_get(r, "nine/9key", 9, buf, 3, NULL), 5);
	expect("9-byte partial copy", memcmp(buf, "sho\0", 4), 0);
	expect("8-byte hit", shmreg_get(r, "id:00042", 8, buf, 64, NULL), 8);
	expect("absent", shmreg_get(r, "inline/none/16by", 16, buf, 64, NULL),
	       -ENOENT);
	expect("long value", shmreg_get(r, "inline/big/16byt", 16, buf,
					sizeof(buf), NULL), 200);
	expect("long value bytes", memcmp(buf, big, 200), 0);
	expect("library, same key",
	       (shmreg_get)(r, "inline/key/16byt", 16, buf, 64, NULL), 64);
	shmreg_close(r);
	shmreg_writer_close(w);
	if (!fails)
		printf("inline_get: ok\n");
	return fails != 0;
}

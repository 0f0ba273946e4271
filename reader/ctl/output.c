/* SPDX-License-Identifier: MIT */
/* output.c - shmregctl: JSON and terminal rendering of arbitrary bytes. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/*
 * Length of the well-formed UTF-8 sequence at @p (at most @n bytes), or 0
 * when the bytes there are not one.  The table is Unicode's "well-formed
 * byte sequences" (Unicode 15, table 3-7): it excludes overlong forms
 * (C0, C1, E0 80..9F, F0 80..8F), the surrogates (ED A0..BF) and
 * everything above U+10FFFF (F4 90.., F5..FF), which is exactly what a
 * strict decoder such as Python's refuses.
 */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char b = p[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		len = 2;
	else if (b >= 0xe0 && b <= 0xef)
		len = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	if (b == 0xe0)
		lo = 0xa0;
	else if (b == 0xed)
		hi = 0x9f;
	else if (b == 0xf0)
		lo = 0x90;
	else if (b == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

bool utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0, l;

	while (i < n) {
		l = utf8_seq(s + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

void json_string(FILE *f, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0, l;

	fputc('"', f);
	while (i < n) {
		unsigned char b = s[i];

		switch (b) {
		case '"':  fputs("\\\"", f); i++; continue;
		case '\\': fputs("\\\\", f); i++; continue;
		case '\b': fputs("\\b", f);  i++; continue;
		case '\f': fputs("\\f", f);  i++; continue;
		case '\n': fputs("\\n", f);  i++; continue;
		case '\r': fputs("\\r", f);  i++; continue;
		case '\t': fputs("\\t", f);  i++; continue;
		}
		if (b < 0x20 || b == 0x7f) {
			/* JSON requires escaping below 0x20; DEL is escaped
			 * too so that the output is plain printable text */
			fprintf(f, "\\u%04x", b);
			i++;
			continue;
		}
		l = utf8_seq(s + i, n - i);
		if (l) {
			fwrite(s + i, 1, l, f);
			i += l;
		} else {
			/* one ill-formed byte becomes one U+FFFD; the exact
			 * bytes travel in the _base64 member */
			fputs("\\ufffd", f);
			i++;
		}
	}
	fputc('"', f);
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(FILE *f, const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 |
			     s[i + 2];

		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(b64[(v >> 6) & 63], f);
		fputc(b64[v & 63], f);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;

		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputs("==", f);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;

		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(b64[(v >> 6) & 63], f);
		fputc('=', f);
	}
}

void json_bytes_member(FILE *f, const char *name, const void *p, size_t n)
{
	fprintf(f, "\"%s\":", name);
	json_string(f, p, n);
	if (!utf8_valid(p, n)) {
		fprintf(f, ",\"%s_base64\":\"", name);
		base64(f, p, n);
		fputc('"', f);
	}
}

void human_bytes(FILE *f, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0, l;

	while (i < n) {
		unsigned char b = s[i];

		switch (b) {
		case '\\': fputs("\\\\", f); i++; continue;
		case '\n': fputs("\\n", f);  i++; continue;
		case '\r': fputs("\\r", f);  i++; continue;
		case '\t': fputs("\\t", f);  i++; continue;
		}
		if (b < 0x20 || b == 0x7f) {
			fprintf(f, "\\x%02x", b);
			i++;
			continue;
		}
		l = utf8_seq(s + i, n - i);
		if (l) {
			fwrite(s + i, 1, l, f);
			i += l;
		} else {
			fprintf(f, "\\x%02x", b);
			i++;
		}
	}
}

void json_entry(FILE *f, const void *key, size_t klen, const void *val,
		size_t vlen, const shmreg_info_t *info)
{
	fputc('{', f);
	json_bytes_member(f, "key", key, klen);
	fputc(',', f);
	json_bytes_member(f, "value", val, vlen);
	fprintf(f, ",\"vlen\":%zu,\"mod_rev\":%" PRIu64 ",\"create_rev\":%"
		PRIu64 ",\"owner_pid\":%d,\"expires_at_ns\":%" PRId64
		",\"ephemeral\":%s}", vlen, info->mod_rev, info->create_rev,
		(int)info->owner_pid, info->expires_at_ns,
		(info->flags & SHMREG_EPHEMERAL) ? "true" : "false");
}

/* The first output error seen (EPIPE included), reported once. */
static int output_error;

int ctl_flush(int code)
{
	if (!output_error && (fflush(stdout) != 0 || ferror(stdout))) {
		/* fflush reports a write error of this flush, ferror one of
		 * an earlier, implicit flush (a full stdio buffer) */
		output_error = errno ? errno : EIO;
		if (output_error != EPIPE)
			ctl_fail("writing standard output", output_error);
	}
	/* a reader that went away (| head) is no error of ours */
	if (output_error && output_error != EPIPE)
		return CTL_ERROR;
	return code;
}

bool ctl_output_failed(void)
{
	return output_error != 0;
}

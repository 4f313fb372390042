/*
 * The kernel's memcpy, memmove and memset, as the module meets them on
 * FreeBSD amd64 with ERMS (the ifunc picks the erms variants there):
 * general-purpose registers only, since kernel code saves no FPU state;
 * copies of up to 1024 bytes in 8-byte moves, the last 32 bytes or fewer
 * as overlapping first and last pieces; longer ones with rep movsb from a
 * 16-byte aligned destination; memset with words up to 256 bytes and
 * rep stosb beyond (the thresholds and means of FreeBSD's MEMMOVE and
 * MEMSET in sys/amd64/amd64/support.S). Not
 * FreeBSD's code: a stand-in with the same means, so that the engine's
 * copies cost here what they cost in a kernel, not what glibc's AVX-512
 * copies cost.
 */
#include <stddef.h>
#include <stdint.h>

/* Like kernel code: no SSE, AVX or x87 in any function of this file. */
#pragma clang attribute push(__attribute__((target("general-regs-only"))), \
    apply_to = function)

void *ukld_kpi_memcpy(void *dst, const void *src, size_t len);
void *ukld_kpi_memmove(void *dst, const void *src, size_t len);
void *ukld_kpi_memset(void *dst, int c, size_t len);

/* Up to this many bytes, word moves beat rep movsb's start-up. */
#define UK_SHORT 1024
/* Up to this many bytes, memset stores words; rep stosb beyond. */
#define UK_SHORT_SET 256

static inline uint64_t
uk_load8(const unsigned char *p)
{
	uint64_t v;

	__builtin_memcpy(&v, p, 8);
	return (v);
}

static inline void
uk_store8(unsigned char *p, uint64_t v)
{
	__builtin_memcpy(p, &v, 8);
}

/* At most 32 bytes: the range's first and last pieces, which may overlap,
 * all read before any is written (no byte loop). */
static inline void
uk_copy_upto32(unsigned char *d, const unsigned char *s, size_t len)
{
	if (len >= 16) {
		uint64_t a = uk_load8(s), b = uk_load8(s + 8);
		uint64_t c = uk_load8(s + len - 16), e = uk_load8(s + len - 8);

		uk_store8(d, a);
		uk_store8(d + 8, b);
		uk_store8(d + len - 16, c);
		uk_store8(d + len - 8, e);
	} else if (len >= 8) {
		uint64_t a = uk_load8(s), b = uk_load8(s + len - 8);

		uk_store8(d, a);
		uk_store8(d + len - 8, b);
	} else if (len >= 4) {
		uint32_t a, b;

		__builtin_memcpy(&a, s, 4);
		__builtin_memcpy(&b, s + len - 4, 4);
		__builtin_memcpy(d, &a, 4);
		__builtin_memcpy(d + len - 4, &b, 4);
	} else if (len >= 2) {
		uint16_t a, b;

		__builtin_memcpy(&a, s, 2);
		__builtin_memcpy(&b, s + len - 2, 2);
		__builtin_memcpy(d, &a, 2);
		__builtin_memcpy(d + len - 2, &b, 2);
	} else if (len == 1)
		*d = *s;
}

/* Forward copy of a short length: 32-byte blocks of words, then what is
 * left as above. */
static void
uk_copy_short(unsigned char *d, const unsigned char *s, size_t len)
{
	while (len >= 32) {
		uint64_t a = uk_load8(s), b = uk_load8(s + 8);
		uint64_t c = uk_load8(s + 16), e = uk_load8(s + 24);

		uk_store8(d, a);
		uk_store8(d + 8, b);
		uk_store8(d + 16, c);
		uk_store8(d + 24, e);
		d += 32;
		s += 32;
		len -= 32;
	}
	uk_copy_upto32(d, s, len);
}

void *
ukld_kpi_memcpy(void *dst, const void *src, size_t len)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	uint64_t head0, head1;
	size_t skip;

	if (len <= UK_SHORT) {
		uk_copy_short(d, s, len);
		return (dst);
	}
	/* rep movsb from a 16-byte aligned destination; the bytes before it
	 * are stored as two words afterwards. */
	skip = (16 - ((uintptr_t)d & 15)) & 15;
	head0 = uk_load8(s);
	head1 = uk_load8(s + 8);
	d += skip;
	s += skip;
	len -= skip;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(len) : : "memory");
	if (skip != 0) {
		uk_store8(dst, head0);
		uk_store8((unsigned char *)dst + 8, head1);
	}
	return (dst);
}

void *
ukld_kpi_memmove(void *dst, const void *src, size_t len)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	/* Forward unless the destination starts inside the source. */
	if ((uintptr_t)d - (uintptr_t)s >= len)
		return (ukld_kpi_memcpy(dst, src, len));
	while (len-- > 0)
		d[len] = s[len];
	return (dst);
}

void *
ukld_kpi_memset(void *dst, int c, size_t len)
{
	unsigned char *d = dst;
	uint64_t w = 0x0101010101010101ull * (unsigned char)c;

	if (len > UK_SHORT_SET) {
		__asm__ volatile("rep stosb" : "+D"(d), "+c"(len) : "a"(c) : "memory");
		return (dst);
	}
	while (len >= 32) {
		uk_store8(d, w);
		uk_store8(d + 8, w);
		uk_store8(d + 16, w);
		uk_store8(d + 24, w);
		d += 32;
		len -= 32;
	}
	if (len >= 16) {
		uk_store8(d, w);
		uk_store8(d + 8, w);
		uk_store8(d + len - 16, w);
		uk_store8(d + len - 8, w);
	} else if (len >= 8) {
		uk_store8(d, w);
		uk_store8(d + len - 8, w);
	} else {
		while (len-- > 0)
			*d++ = (unsigned char)c;
	}
	return (dst);
}

#pragma clang attribute pop

/*
 * The kernel's memcpy, memmove and memset, as the module meets them on
 * FreeBSD amd64 with ERMS (the ifunc picks the erms variants there):
 * general-purpose registers only, since kernel code saves no FPU state;
 * up to 1024 bytes in 8-byte moves, longer copies with rep movsb (the
 * thresholds of FreeBSD's MEMMOVE in sys/amd64/amd64/support.S). Not
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

/* Forward copy of a short length: 32-byte blocks of words, the words
 * left, then the tail bytes. */
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
	while (len >= 8) {
		uk_store8(d, uk_load8(s));
		d += 8;
		s += 8;
		len -= 8;
	}
	while (len-- > 0)
		*d++ = *s++;
}

void *
ukld_kpi_memcpy(void *dst, const void *src, size_t len)
{
	void *d = dst;

	if (len <= UK_SHORT) {
		uk_copy_short(dst, src, len);
		return (dst);
	}
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(len) : : "memory");
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
	void *d = dst;

	__asm__ volatile("rep stosb" : "+D"(d), "+c"(len) : "a"(c) : "memory");
	return (dst);
}

#pragma clang attribute pop

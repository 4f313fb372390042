/*
 * The kernel's memcpy, memmove and memset, as the module meets them on
 * FreeBSD amd64 with ERMS (the ifunc picks memcpy_erms and friends there):
 * general-purpose registers only, since kernel code saves no FPU state, and
 * rep movsb/stosb for anything but short lengths. Not FreeBSD's code: a
 * stand-in with the same means, so that the engine's copies cost here what
 * they cost in a kernel, not what glibc's AVX-512 copies cost.
 */
#include <stddef.h>
#include <stdint.h>

void *ukld_kpi_memcpy(void *dst, const void *src, size_t len);
void *ukld_kpi_memmove(void *dst, const void *src, size_t len);
void *ukld_kpi_memset(void *dst, int c, size_t len);

/* Below this many bytes, rep's start-up costs more than word moves. */
#define UK_SHORT 32

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

/* Forward copy of a short length: whole words, then the tail bytes. */
static void
uk_copy_short(unsigned char *d, const unsigned char *s, size_t len)
{
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

	if (len < UK_SHORT) {
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

/*
 * ck_md.h for compile-checking zbpf's C shims on Linux against FreeBSD's
 * kernel headers. FreeBSD's kernel carries its own Concurrency Kit headers;
 * Debian's libck-dev supplies the rest, but its ck_md.h describes a Linux
 * userland build (SSE, double-width operations). This one describes the
 * amd64 kernel: no FPU/SIMD, total store order.
 */
#ifndef CK_MD_H
#define CK_MD_H

#define CK_MD_CACHELINE (64)
#define CK_MD_PAGESIZE (PAGE_SIZE)
#define CK_MD_RTM_DISABLE
#define CK_MD_LSE_DISABLE
#define CK_MD_POINTER_PACK_DISABLE
#define CK_MD_VMA_BITS_UNKNOWN
#define CK_MD_TSO
#define CK_VERSION "0.7.1"
#define CK_GIT_SHA ""

#endif /* CK_MD_H */

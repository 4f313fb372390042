/*
 * FreeBSD's mmap(2) takes MAP_ANON alone as a private mapping; Linux wants
 * MAP_PRIVATE or MAP_SHARED with it and fails otherwise. bpf_jitter's
 * userland path maps its code buffer with MAP_ANON only.
 */
#ifndef ZBPF_BENCH_COMPAT_MMAN_H
#define ZBPF_BENCH_COMPAT_MMAN_H

#include_next <sys/mman.h>

#ifdef __linux__
#undef MAP_ANON
#define MAP_ANON (MAP_ANONYMOUS | MAP_PRIVATE)
#endif

#endif

/*
 * What FreeBSD's sys/cdefs.h gives bpf_jitter's sources that the host's
 * may not: the system header first, then the two FreeBSD macros they use.
 * Only on the benchmark's include path (tests/bench/build.rs).
 */
#ifndef ZBPF_BENCH_COMPAT_CDEFS_H
#define ZBPF_BENCH_COMPAT_CDEFS_H

#include_next <sys/cdefs.h>

#ifndef __FBSDID
#define __FBSDID(s) struct zbpf_bench_fbsdid_unused
#endif
#ifndef __unused
#define __unused __attribute__((__unused__))
#endif

#endif

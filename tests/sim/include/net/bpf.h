/*
 * <net/bpf.h> for libpcap's pcap-bpf.c built on Linux against the zbpf
 * simulator (tests/sim/run.sh): FreeBSD's bpf(4) interface as zsim.h
 * declares it, and the few FreeBSD <sys/time.h> pieces pcap-bpf.c uses with
 * BPF_T_BINTIME time stamps (struct bintime and its conversions, written
 * here from their definition: seconds plus a 64-bit binary fraction).
 */
#ifndef ZSIM_NET_BPF_H
#define ZSIM_NET_BPF_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>
#include "zsim.h"

struct bintime {
	int64_t sec;
	uint64_t frac;
};

static inline void
bintime2timespec(const struct bintime *bt, struct timespec *ts)
{
	ts->tv_sec = (time_t)bt->sec;
	ts->tv_nsec = (long)(((unsigned __int128)bt->frac * 1000000000u) >> 64);
}

static inline void
bintime2timeval(const struct bintime *bt, struct timeval *tv)
{
	tv->tv_sec = (time_t)bt->sec;
	tv->tv_usec = (suseconds_t)(((unsigned __int128)bt->frac * 1000000u) >> 64);
}

#endif

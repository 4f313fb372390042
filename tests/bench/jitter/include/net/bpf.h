/*
 * struct bpf_insn and the opcode macros for bpf_jitter's sources, from
 * libpcap's <pcap/bpf.h> (installed on Linux and in FreeBSD's base alike);
 * the same values as FreeBSD's <net/bpf.h>, which also brings uint32_t.
 */
#ifndef ZBPF_BENCH_COMPAT_NET_BPF_H
#define ZBPF_BENCH_COMPAT_NET_BPF_H

#include <stdint.h>
#include <sys/types.h>
#include <pcap/bpf.h>

#endif

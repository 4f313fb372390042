/*
 * zsim-prelude.h: force-included (clang -include) into libpcap's pcap-bpf.c
 * and pcap.c when they are built on Linux against the zbpf simulator
 * (tests/sim/run.sh). libpcap's code is not changed: the system calls it
 * makes on the BPF device are renamed to the glue in zsim-glue.c, which
 * hands descriptors of the simulated device to the simulator (zsim.h) and
 * everything else to the C library.
 *
 * The system headers come first, so that their declarations keep their own
 * names; the macros only rename the calls in libpcap's code.
 */
#ifndef ZSIM_PRELUDE_H
#define ZSIM_PRELUDE_H

/* What libpcap's ftmacros.h asks of glibc, before the first system header. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

int zsg_open(const char *path, int flags, ...);
int zsg_close(int fd);
int zsg_ioctl(int fd, unsigned long cmd, ...);
ssize_t zsg_read(int fd, void *buf, size_t len);
ssize_t zsg_write(int fd, const void *buf, size_t len);
int zsg_poll(struct pollfd *fds, nfds_t n, int timeout);
int zsg_fcntl(int fd, int cmd, ...);
/* FreeBSD's sysctlbyname(3), for the device's knobs (net.zbpf and net.bpf). */
int sysctlbyname(const char *name, void *old, size_t *oldlen, const void *new_,
    size_t newlen);
#define ZBPF_HAVE_SYSCTLBYNAME 1

#define open zsg_open
#define close zsg_close
#define ioctl zsg_ioctl
#define read zsg_read
#define write zsg_write
#define poll zsg_poll
#define fcntl zsg_fcntl

#endif /* ZSIM_PRELUDE_H */

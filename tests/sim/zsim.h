/*
 * zsim.h: the zbpf simulator's C API (src/hosted/capi.rs), and FreeBSD's
 * bpf(4) user interface as a Linux C program needs it to talk to the
 * simulator: FreeBSD's ioctl numbers and structures, which the simulator
 * takes as /dev/bpf does.
 *
 * Conventions of the API: open flags, struct pollfd bits and errno values
 * are Linux's (the C code's own libc); ioctl commands and their argument
 * structures are FreeBSD's (amd64, which has the same LP64 layout as
 * x86_64 Linux). Failures return -1 and set errno.
 *
 * Every FreeBSD number and layout below is checked against the Rust ABI
 * tables (src/abi, the same ones checked against FreeBSD's headers) by
 * tests/sim/abi-drift.sh, so the two cannot drift apart.
 *
 * struct bpf_insn, struct bpf_program, the BPF_ opcode macros and DLT_
 * values come from libpcap's <pcap/bpf.h>, which has FreeBSD's values.
 */
#ifndef ZSIM_H
#define ZSIM_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/time.h>
#include <pcap/bpf.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The simulator's syscalls (one simulated machine per process). ---- */

int zsim_open(const char *path, int flags);
int zsim_ioctl(int fd, unsigned long cmd, void *arg);
ssize_t zsim_read(int fd, void *buf, size_t len);
ssize_t zsim_write(int fd, const void *buf, size_t len);
int zsim_close(int fd);
/* fcntl(fd, F_SETFL, flags): only O_NONBLOCK matters. */
int zsim_setfl(int fd, int flags);
int zsim_poll(struct pollfd *fds, nfds_t nfds, int timeout);

/* ---- The simulated network. ---- */

/* An Ethernet interface named `name` (EBUSY if it exists). */
int zsim_iface_add(const char *name);
/* Connects two interfaces back to back, as epair(4) does. */
int zsim_iface_pair(const char *a, const char *b);
/* The interface departs (descriptors on it are detached and woken). */
int zsim_iface_remove(const char *name);
/* The interface receives (inbound != 0) or sends a frame. */
int zsim_inject(const char *name, const void *frame, size_t len, int inbound);
/* Frames that descriptors have written on the interface so far. */
int zsim_iface_sent(const char *name);

/* The device's knobs, by their last name component ("zerocopy_enable"). */
int zsim_sysctl_get(const char *name, int *value);
int zsim_sysctl_set(const char *name, int value);

/* ---- FreeBSD's ioctl encoding (sys/sys/ioccom.h), not Linux's. ---- */

#define ZSIM_IOCPARM_MASK	0x1fffUL
#define ZSIM_IOC_VOID		0x20000000UL
#define ZSIM_IOC_OUT		0x40000000UL
#define ZSIM_IOC_IN		0x80000000UL
#define ZSIM_IOC_INOUT		(ZSIM_IOC_IN | ZSIM_IOC_OUT)
#define ZSIM_IOC(inout, group, num, len) \
	((unsigned long)(inout) | (((unsigned long)(len) & ZSIM_IOCPARM_MASK) << 16) | \
	    ((unsigned long)(group) << 8) | (unsigned long)(num))
#define ZSIM_IO(g, n)		ZSIM_IOC(ZSIM_IOC_VOID, (g), (n), 0)
#define ZSIM_IOR(g, n, t)	ZSIM_IOC(ZSIM_IOC_OUT, (g), (n), sizeof(t))
#define ZSIM_IOW(g, n, t)	ZSIM_IOC(ZSIM_IOC_IN, (g), (n), sizeof(t))
#define ZSIM_IOWR(g, n, t)	ZSIM_IOC(ZSIM_IOC_INOUT, (g), (n), sizeof(t))
#define ZSIM_IOCPARM_LEN(x)	(((x) >> 16) & ZSIM_IOCPARM_MASK)

/* ---- FreeBSD's <net/bpf.h>, the user-visible part. ---- */

/* libpcap's <pcap/bpf.h> gives 4-byte alignment off FreeBSD: use FreeBSD's. */
#undef BPF_RELEASE
#undef BPF_ALIGNMENT
#undef BPF_WORDALIGN
#define BPF_RELEASE		199606
#define BPF_ALIGNMENT		sizeof(long)
#define BPF_WORDALIGN(x)	(((x) + (BPF_ALIGNMENT - 1)) & ~(BPF_ALIGNMENT - 1))
#define BPF_MAXBUFSIZE		0x80000
#define BPF_MINBUFSIZE		32
#define BPF_MAJOR_VERSION	1
#define BPF_MINOR_VERSION	1

#define BPF_BUFMODE_BUFFER	1
#define BPF_BUFMODE_ZBUF	2

enum bpf_direction {
	BPF_D_IN,	/* see incoming packets */
	BPF_D_INOUT,	/* see incoming and outgoing packets */
	BPF_D_OUT	/* see outgoing packets */
};

#define BPF_T_MICROTIME		0x0000
#define BPF_T_NANOTIME		0x0001
#define BPF_T_BINTIME		0x0002
#define BPF_T_NONE		0x0003
#define BPF_T_FORMAT_MASK	0x0003
#define BPF_T_NORMAL		0x0000
#define BPF_T_FAST		0x0100
#define BPF_T_MONOTONIC		0x0200
#define BPF_T_FLAG_MASK		0x0300

struct bpf_stat {
	unsigned int bs_recv;
	unsigned int bs_drop;
};

struct bpf_version {
	unsigned short bv_major;
	unsigned short bv_minor;
};

struct bpf_dltlist {
	unsigned int bfl_len;
	unsigned int *bfl_list;
};

struct bpf_zbuf {
	void *bz_bufa;
	void *bz_bufb;
	size_t bz_buflen;
};

struct bpf_zbuf_header {
	volatile unsigned int bzh_kernel_gen;
	volatile unsigned int bzh_kernel_len;
	volatile unsigned int bzh_user_gen;
	unsigned int _bzh_pad[5];
};

struct bpf_ts {
	int64_t bt_sec;
	uint64_t bt_frac;
};

struct bpf_xhdr {
	struct bpf_ts bh_tstamp;
	uint32_t bh_caplen;
	uint32_t bh_datalen;
	unsigned short bh_hdrlen;
};

struct bpf_hdr {
	struct timeval bh_tstamp;
	uint32_t bh_caplen;
	uint32_t bh_datalen;
	unsigned short bh_hdrlen;
};

/* FreeBSD's struct ifreq is 32 bytes (Linux's is 40); only the name at
 * offset 0 matters to bpf, so either can be passed to BIOCSETIF. (The field
 * names differ from ifreq's, which Linux's <net/if.h> makes macros.) */
struct zsim_ifreq {
	char zifr_name[16];
	uint64_t zifr_ifru[2];
};

#define BIOCGBLEN	ZSIM_IOR('B', 102, unsigned int)
#define BIOCSBLEN	ZSIM_IOWR('B', 102, unsigned int)
#define BIOCSETF	ZSIM_IOW('B', 103, struct bpf_program)
#define BIOCFLUSH	ZSIM_IO('B', 104)
#define BIOCPROMISC	ZSIM_IO('B', 105)
#define BIOCGDLT	ZSIM_IOR('B', 106, unsigned int)
#define BIOCGETIF	ZSIM_IOR('B', 107, struct zsim_ifreq)
#define BIOCSETIF	ZSIM_IOW('B', 108, struct zsim_ifreq)
#define BIOCSRTIMEOUT	ZSIM_IOW('B', 109, struct timeval)
#define BIOCGRTIMEOUT	ZSIM_IOR('B', 110, struct timeval)
#define BIOCGSTATS	ZSIM_IOR('B', 111, struct bpf_stat)
#define BIOCIMMEDIATE	ZSIM_IOW('B', 112, unsigned int)
#define BIOCVERSION	ZSIM_IOR('B', 113, struct bpf_version)
#define BIOCGRSIG	ZSIM_IOR('B', 114, unsigned int)
#define BIOCSRSIG	ZSIM_IOW('B', 115, unsigned int)
#define BIOCGHDRCMPLT	ZSIM_IOR('B', 116, unsigned int)
#define BIOCSHDRCMPLT	ZSIM_IOW('B', 117, unsigned int)
#define BIOCGDIRECTION	ZSIM_IOR('B', 118, unsigned int)
#define BIOCSDIRECTION	ZSIM_IOW('B', 119, unsigned int)
#define BIOCSDLT	ZSIM_IOW('B', 120, unsigned int)
#define BIOCGDLTLIST	ZSIM_IOWR('B', 121, struct bpf_dltlist)
#define BIOCLOCK	ZSIM_IO('B', 122)
#define BIOCSETWF	ZSIM_IOW('B', 123, struct bpf_program)
#define BIOCFEEDBACK	ZSIM_IOW('B', 124, unsigned int)
#define BIOCGETBUFMODE	ZSIM_IOR('B', 125, unsigned int)
#define BIOCSETBUFMODE	ZSIM_IOW('B', 126, unsigned int)
#define BIOCGETZMAX	ZSIM_IOR('B', 127, size_t)
#define BIOCROTZBUF	ZSIM_IOR('B', 128, struct bpf_zbuf)
#define BIOCSETZBUF	ZSIM_IOW('B', 129, struct bpf_zbuf)
#define BIOCSETFNR	ZSIM_IOW('B', 130, struct bpf_program)
#define BIOCGTSTAMP	ZSIM_IOR('B', 131, unsigned int)
#define BIOCSTSTAMP	ZSIM_IOW('B', 132, unsigned int)
#define BIOCSETVLANPCP	ZSIM_IOW('B', 133, unsigned int)
#define BIOCGSEESENT	BIOCGDIRECTION
#define BIOCSSEESENT	BIOCSDIRECTION

/* zbpf's own commands (zbpf(4)): the 2007 design's query and acknowledge. */
#define BIOCGETZNEXT	ZSIM_IOR('B', 224, struct bpf_zbuf)
#define BIOCACKZBUF	ZSIM_IOW('B', 225, struct bpf_zbuf)

#ifdef __cplusplus
}
#endif

#endif /* ZSIM_H */

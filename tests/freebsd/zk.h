/*
 * zk.h: the zbpf FreeBSD test kit's C side.
 *
 * The same sources build two ways:
 *   - for FreeBSD (the kit, scripts/freebsd/kit.sh): the device is a real
 *     /dev/zbpf or /dev/bpf, traffic is real UDP over an epair(4) pair;
 *   - for Linux with -DZK_SIM (tests/sim/run.sh): the device and the
 *     interfaces are the zbpf simulator's (tests/sim/zsim.h), linked from
 *     the crate built as a static library, and the engine is the same Rust
 *     code as the module's.
 * Everything that touches the device goes through the zk_ wrappers below,
 * which are the system calls on FreeBSD and zsim_ calls in the simulator;
 * the zero-copy consumer (zk_zbuf.c) and the checks are written once.
 */
#ifndef ZK_H
#define ZK_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifdef ZK_SIM
#include "zsim.h"
#define ZK_PLATFORM "simulator"
typedef struct zsim_ifreq zk_ifreq;
#define ZK_IFR_NAME(r) ((r).zifr_name)
static inline int zk_open(const char *path, int flags) { return zsim_open(path, flags); }
static inline int zk_ioctl(int fd, unsigned long cmd, void *arg) { return zsim_ioctl(fd, cmd, arg); }
static inline ssize_t zk_read(int fd, void *buf, size_t len) { return zsim_read(fd, buf, len); }
static inline ssize_t zk_write(int fd, const void *buf, size_t len) { return zsim_write(fd, buf, len); }
static inline int zk_close(int fd) { return zsim_close(fd); }
static inline int zk_poll(struct pollfd *fds, nfds_t n, int ms) { return zsim_poll(fds, n, ms); }
static inline int zk_setnonblock(int fd, int on) { return zsim_setfl(fd, on ? O_NONBLOCK : 0); }
#else
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <net/bpf.h>
#define ZK_PLATFORM "FreeBSD"
typedef struct ifreq zk_ifreq;
#define ZK_IFR_NAME(r) ((r).ifr_name)
static inline int zk_open(const char *path, int flags) { return open(path, flags); }
static inline int zk_ioctl(int fd, unsigned long cmd, void *arg) { return ioctl(fd, cmd, arg); }
static inline ssize_t zk_read(int fd, void *buf, size_t len) { return read(fd, buf, len); }
static inline ssize_t zk_write(int fd, const void *buf, size_t len) { return write(fd, buf, len); }
static inline int zk_close(int fd) { return close(fd); }
static inline int zk_poll(struct pollfd *fds, nfds_t n, int ms) { return poll(fds, n, ms); }
static inline int
zk_setnonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return (-1);
	return (fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)));
}
/* zbpf's own commands (zbpf(4)); FreeBSD's headers do not have them. */
#ifndef BIOCGETZNEXT
#define BIOCGETZNEXT	_IOR('B', 224, struct bpf_zbuf)
#endif
#ifndef BIOCACKZBUF
#define BIOCACKZBUF	_IOW('B', 225, struct bpf_zbuf)
#endif
#endif /* ZK_SIM */

/* ---- Output and failure. ---- */

/* Prints "  name: message" (a detail line under the kit's PASS/FAIL). */
void zk_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* zk_note() and returns -1: `return zk_fail(...)` in a check. */
int zk_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The check being run (prefix of notes). */
extern const char *zk_check_name;

/* A named check: 0 for PASS. */
struct zk_check {
	const char *name;
	int (*fn)(void);
};
/*
 * Runs the checks named in argv[1..] (all of them when there are none), in
 * table order: one "PASS name (N ms)" or "FAIL name (N ms)" line each, then
 * "N passed, N failed". Returns the exit status: 0 when none failed.
 */
int zk_run_checks(const struct zk_check *checks, size_t n, int argc, char **argv);

/* ---- The test setting: device, interfaces, addresses. ---- */

struct zk_env {
	const char *device;	/* /dev/zbpf or /dev/bpf */
	const char *tx_if;	/* the generator sends here (epairNa) */
	const char *rx_if;	/* its peer, where frames arrive (epairNb) */
	const char *spare_tx;	/* a pair that the departure check destroys */
	const char *spare_rx;
	uint8_t tx_mac[6], rx_mac[6];
	uint32_t tx_ip, rx_ip;	/* host order */
	const char *sysctl;	/* the device's sysctl tree: net.zbpf or net.bpf */
	int sock;		/* FreeBSD: the UDP socket the generator uses */
};
extern struct zk_env zk;

/* Fills `zk` (FreeBSD: from the interfaces; simulator: creates them). */
int zk_env_init(const char *device, const char *tx_if, const char *rx_if,
    const char *spare_tx, const char *spare_rx);
void zk_env_fini(void);
/* The device's knob `leaf` (zerocopy_enable, ...) under zk.sysctl. */
int zk_sysctl_get(const char *leaf, int *value);
int zk_sysctl_set(const char *leaf, int value);

/* ---- Generated traffic: IPv4/UDP frames numbered by seq. ---- */

#define ZK_PORT_BASE	47000	/* destination ports used: ZK_PORT_BASE + k */
#define ZK_SPORT	46999
#define ZK_MAGIC	0x5a42504bU	/* "ZBPK" */

/* Payload length of frame `seq` (fixed_len if nonzero). */
size_t zk_payload_len(uint32_t seq, size_t fixed_len);
/* Sends frame `seq` to UDP port `port`, payload length zk_payload_len(). */
int zk_send(uint32_t seq, uint16_t port, size_t fixed_len);
/* The whole Ethernet frame zk_send() produces, for write(2) injection
 * (FreeBSD fills the IP id and checksums itself when it sends). */
size_t zk_build_frame(uint8_t *buf, size_t cap, uint32_t seq, uint16_t port,
    size_t fixed_len);
/*
 * Checks one captured frame, every byte: Ethernet addresses and type, the
 * IPv4 header (with a valid checksum), the UDP header, the payload. Returns
 * the frame's seq, or -1 with a note saying what differs.
 */
long zk_verify(const uint8_t *frame, uint32_t caplen, uint32_t datalen,
    uint16_t port, size_t fixed_len);

/* A BPF program that accepts IPv4 UDP to `port` (whole packet). */
struct bpf_program *zk_udp_port_filter(uint16_t port);

/* ---- The device. ---- */

/* Opens the device read-write; -1 with a note on failure. */
int zk_dev_open(void);
/* BIOCSETIF to `ifname`. */
int zk_attach(int fd, const char *ifname);
/* Walks the records of a buffer: calls fn for each; -1 on a malformed one. */
typedef int (*zk_record_fn)(void *arg, const uint8_t *frame, uint32_t caplen,
    uint32_t datalen);
int zk_walk(const uint8_t *buf, size_t len, zk_record_fn fn, void *arg);

/* ---- The zero-copy consumer (zk_zbuf.c). ---- */

struct zk_zbuf {
	int fd;
	uint8_t *buf[2];	/* the two buffers, headers included */
	size_t len;		/* length of each, header included */
	int shared;		/* MAP_SHARED (else MAP_PRIVATE) */
	int cur;		/* buffer being processed, or -1 */
	int last;		/* last buffer taken, or -1 */
	unsigned int cur_gen;	/* its kernel generation when taken */
	/* What the consumer did. */
	unsigned long taken;		/* buffers taken */
	unsigned long taken_shm;	/* ... seen in shared memory before any syscall */
	unsigned long polls;		/* poll(2) calls */
	unsigned long rotations;	/* BIOCROTZBUF calls */
	unsigned long rotated;		/* ... that handed over a buffer */
};

/* Buffer mode ZBUF, two buffers of `len` bytes (0: BIOCGETZMAX-capped
 * 2 pages), BIOCSETZBUF. `shared`: MAP_SHARED|MAP_ANON (libpcap with the
 * zbpf patch), else MAP_PRIVATE|MAP_ANON (stock libpcap's kind). */
int zk_zbuf_setup(struct zk_zbuf *z, int fd, size_t len, int shared);
/* No system call: takes the next buffer in turn if the kernel handed it
 * over. Returns 1 (data/len set) or 0. */
int zk_zbuf_next_shm(struct zk_zbuf *z, const uint8_t **data, size_t *len);
/* Gives the current buffer back (store of the generation, release). */
void zk_zbuf_ack(struct zk_zbuf *z);
/* The libpcap-patch algorithm: shared memory first; then (timeout_ms >= 0)
 * poll(2), shared memory again; then BIOCROTZBUF and shared memory again.
 * Returns 1 with a buffer, 0 with none, -1 on error. */
int zk_zbuf_next(struct zk_zbuf *z, int timeout_ms, const uint8_t **data,
    size_t *len);
/* Unmaps the buffers. */
void zk_zbuf_free(struct zk_zbuf *z);
/* Acquire load / release store on a header word. */
unsigned int zk_load_acq(volatile unsigned int *w);
void zk_store_rel(volatile unsigned int *w, unsigned int v);

/* ---- Time. ---- */

/* Monotonic milliseconds. */
long zk_now_ms(void);
void zk_sleep_ms(long ms);
/* zk_now_ms() + ms, ms scaled by ZK_DEADLINE_PCT percent (default 100):
 * the limit of a wait that only a failure reaches. */
long zk_deadline_ms(long ms);

/* ---- The checks (each returns 0 on success, -1 on failure). ---- */

int zk_check_device(void);
int zk_check_zerocopy_sysctl(void);
int zk_check_capture(int zbuf_mode);
int zk_check_timing(void);
int zk_check_write(void);
int zk_check_fork(int who_reads, int shared);	/* who_reads: 0 parent, 1 child */
int zk_check_hostile(void);
int zk_check_depart(void);
int zk_check_bad_input(void);
int zk_check_filter(void);
#ifndef ZK_SIM
int zk_check_traffic(void);
#endif

#endif /* ZK_H */

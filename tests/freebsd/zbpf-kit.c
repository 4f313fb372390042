/*
 * zbpf-kit: the FreeBSD test kit's program (scripts/freebsd/kit.sh runs it
 * once per check). Exit status 0 when the check passed, 1 when it failed,
 * with notes on standard output.
 *
 *   zbpf-kit -d DEVICE -t TX_IF -r RX_IF [-s SPARE_TX -S SPARE_RX] CHECK [ARGS]
 *   zbpf-kit -d DEVICE zcopy PID      (also device, zerocopy-sysctl)
 *
 * Checks: device zerocopy-sysctl traffic capture-buffer capture-zbuf
 * filter-libpcap timing write fork-parent-shared fork-child-shared
 * fork-parent-private fork-child-private hostile depart.
 * Helpers for kit.sh: send N PORT (N kit frames to PORT), pcapcheck FILE N
 * PORT (a capture file holds frames 0..N-1 to PORT, byte for byte), zcopy
 * PID (PID has a descriptor in zero-copy mode, from DEVICE's stats sysctl),
 * hold IFNAME (opens the device, attaches, prints "ready", waits for EOF on
 * standard input).
 *
 * The device is expected to be set up by kit.sh: TX_IF has 198.18.0.1/24,
 * 198.18.0.2 has a static ARP entry with RX_IF's address, and IPv6 and
 * checksum offload are off on both.
 */
#include "zk.h"

#include <sys/param.h>
#include <sys/_lock.h>
#include <sys/_mutex.h>
#include <ifaddrs.h>
#include <net/bpfdesc.h>
#include <stdlib.h>
#include <sys/sysctl.h>

/* traffic: the pair carries generated frames (interface counters only:
 * nothing of bpf involved). */
static int
check_traffic(void)
{
	struct ifaddrs *ifa, *i;
	uint64_t before = 0, after = 0;
	const uint32_t n = 200;
	uint32_t k;
	int round;

	for (round = 0; round < 2; round++) {
		uint64_t *v = round == 0 ? &before : &after;

		if (round == 1) {
			for (k = 0; k < n; k++)
				if (zk_send(k, ZK_PORT_BASE, 0) != 0)
					return (-1);
			zk_sleep_ms(500);
		}
		if (getifaddrs(&ifa) != 0)
			return (zk_fail("getifaddrs: %s", strerror(errno)));
		for (i = ifa; i != NULL; i = i->ifa_next)
			if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_LINK &&
			    strcmp(i->ifa_name, zk.rx_if) == 0 && i->ifa_data != NULL)
				*v = ((struct if_data *)i->ifa_data)->ifi_ipackets;
		freeifaddrs(ifa);
	}
	if (after - before < n)
		return (zk_fail("%s received %ju packets while %u were sent on %s", zk.rx_if,
		    (uintmax_t)(after - before), n, zk.tx_if));
	zk_note("%u UDP datagrams sent on %s; %s received %ju packets", n, zk.tx_if, zk.rx_if,
	    (uintmax_t)(after - before));
	return (0);
}

static int
helper_send(int argc, char **argv)
{
	uint32_t n, k;
	uint16_t port;

	if (argc < 3)
		return (zk_fail("usage: send N PORT"));
	n = (uint32_t)strtoul(argv[1], NULL, 10);
	port = (uint16_t)strtoul(argv[2], NULL, 10);
	for (k = 0; k < n; k++) {
		if (zk_send(k, port, 0) != 0)
			return (-1);
		zk_sleep_ms(2);
	}
	return (0);
}

static uint32_t
swap32(uint32_t v, int swap)
{
	return (swap ? __builtin_bswap32(v) : v);
}

/* A classic pcap file with frames 0..n-1 to `port`, in order. */
static int
helper_pcapcheck(int argc, char **argv)
{
	uint8_t gh[24], rh[16], *f = NULL;
	uint32_t magic, n, k, caplen, len, linktype;
	uint16_t port;
	FILE *fp;
	int swap, rc = -1;

	if (argc < 4)
		return (zk_fail("usage: pcapcheck FILE N PORT"));
	n = (uint32_t)strtoul(argv[2], NULL, 10);
	port = (uint16_t)strtoul(argv[3], NULL, 10);
	fp = fopen(argv[1], "r");
	if (fp == NULL)
		return (zk_fail("%s: %s", argv[1], strerror(errno)));
	if (fread(gh, 1, sizeof(gh), fp) != sizeof(gh)) {
		zk_fail("%s: no pcap header", argv[1]);
		goto out;
	}
	memcpy(&magic, gh, 4);
	if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d)
		swap = 0;
	else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1)
		swap = 1;
	else {
		zk_fail("%s: not a pcap file (magic 0x%08x)", argv[1], magic);
		goto out;
	}
	memcpy(&linktype, gh + 20, 4);
	if ((swap32(linktype, swap) & 0x0fffffff) != 1) {
		zk_fail("%s: link type %u, want Ethernet", argv[1], swap32(linktype, swap));
		goto out;
	}
	f = malloc(65536);
	for (k = 0; k < n; k++) {
		long seq;

		if (fread(rh, 1, sizeof(rh), fp) != sizeof(rh)) {
			zk_fail("%s: %u frames, want %u", argv[1], k, n);
			goto out;
		}
		memcpy(&caplen, rh + 8, 4);
		memcpy(&len, rh + 12, 4);
		caplen = swap32(caplen, swap);
		len = swap32(len, swap);
		if (caplen > 65536 || fread(f, 1, caplen, fp) != caplen) {
			zk_fail("%s: record %u cut", argv[1], k);
			goto out;
		}
		seq = zk_verify(f, caplen, len, port, 0);
		if (seq < 0)
			goto out;
		if ((uint32_t)seq != k) {
			zk_fail("%s: frame %ld where %u was due", argv[1], seq, k);
			goto out;
		}
	}
	if (fread(rh, 1, 1, fp) != 0) {
		zk_fail("%s: more than %u frames", argv[1], n);
		goto out;
	}
	zk_note("%s: frames 0..%u to port %u, byte for byte, in order", argv[1], n - 1, port);
	rc = 0;
out:
	free(f);
	fclose(fp);
	return (rc);
}

/* PID has a descriptor in zero-copy mode (DEVICE's stats sysctl). */
static int
helper_zcopy(int argc, char **argv)
{
	char name[64];
	struct xbpf_d *x;
	size_t len = 0, i;
	pid_t pid;
	int found = 0;

	if (argc < 2)
		return (zk_fail("usage: zcopy PID"));
	pid = (pid_t)strtol(argv[1], NULL, 10);
	snprintf(name, sizeof(name), "%s.stats", zk.sysctl);
	if (sysctlbyname(name, NULL, &len, NULL, 0) != 0)
		return (zk_fail("%s: %s", name, strerror(errno)));
	len += 16 * sizeof(*x);
	x = malloc(len);
	if (x == NULL || sysctlbyname(name, x, &len, NULL, 0) != 0)
		return (zk_fail("%s: %s", name, strerror(errno)));
	for (i = 0; i < len / sizeof(*x); i++) {
		if (x[i].bd_structsize != sizeof(*x)) {
			free(x);
			return (zk_fail("%s: record size %u, want %zu", name, x[i].bd_structsize,
			    sizeof(*x)));
		}
		if (x[i].bd_pid != pid)
			continue;
		zk_note("pid %d: descriptor on %s, buffer mode %s, %ju packets received, "
		    "%ju dropped", (int)pid, x[i].bd_ifname,
		    x[i].bd_bufmode == BPF_BUFMODE_ZBUF ? "ZBUF (zero copy)" : "BUFFER",
		    (uintmax_t)x[i].bd_rcount, (uintmax_t)x[i].bd_dcount);
		if (x[i].bd_bufmode == BPF_BUFMODE_ZBUF)
			found = 1;
	}
	free(x);
	if (!found)
		return (zk_fail("pid %d has no zero-copy descriptor in %s", (int)pid, name));
	return (0);
}

/* Holds a descriptor open (kldunload must be refused meanwhile). */
static int
helper_hold(int argc, char **argv)
{
	char b;
	int fd;

	if (argc < 2)
		return (zk_fail("usage: hold IFNAME"));
	fd = zk_dev_open();
	if (fd < 0 || zk_attach(fd, argv[1]) != 0)
		return (-1);
	printf("ready\n");
	fflush(stdout);
	while (read(0, &b, 1) > 0)
		;
	zk_close(fd);
	return (0);
}

static int fork_parent_shared(void) { return (zk_check_fork(0, 1)); }
static int fork_child_shared(void) { return (zk_check_fork(1, 1)); }
static int fork_parent_private(void) { return (zk_check_fork(0, 0)); }
static int fork_child_private(void) { return (zk_check_fork(1, 0)); }
static int capture_buffer(void) { return (zk_check_capture(0)); }
static int capture_zbuf(void) { return (zk_check_capture(1)); }

static const struct zk_check checks[] = {
	{ "device", zk_check_device },
	{ "zerocopy-sysctl", zk_check_zerocopy_sysctl },
	{ "traffic", check_traffic },
	{ "capture-buffer", capture_buffer },
	{ "capture-zbuf", capture_zbuf },
	{ "filter-libpcap", zk_check_filter },
	{ "timing", zk_check_timing },
	{ "write", zk_check_write },
	{ "fork-parent-shared", fork_parent_shared },
	{ "fork-child-shared", fork_child_shared },
	{ "fork-parent-private", fork_parent_private },
	{ "fork-child-private", fork_child_private },
	{ "hostile", zk_check_hostile },
	{ "bad-input", zk_check_bad_input },
	{ "depart", zk_check_depart },
};

static const struct {
	const char *name;
	int (*fn)(int, char **);
} helpers[] = {
	{ "send", helper_send },
	{ "pcapcheck", helper_pcapcheck },
	{ "zcopy", helper_zcopy },
	{ "hold", helper_hold },
};

static void
usage(void)
{
	size_t i;

	fprintf(stderr, "usage: zbpf-kit -d DEVICE -t TX_IF -r RX_IF [-s SPARE_TX -S SPARE_RX] "
	    "CHECK|HELPER [ARGS]\n       zbpf-kit -d DEVICE zcopy PID\nchecks:");
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		fprintf(stderr, " %s", checks[i].name);
	fprintf(stderr, "\nhelpers: send N PORT, pcapcheck FILE N PORT, zcopy PID, hold IFNAME\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *dev = NULL, *tx = "none", *rx = "none", *stx = "none", *srx = "none";
	size_t i;
	int c, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "d:t:r:s:S:")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 't': tx = optarg; break;
		case 'r': rx = optarg; break;
		case 's': stx = optarg; break;
		case 'S': srx = optarg; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (dev == NULL || argc < 1)
		usage();
	if (strcmp(tx, "none") == 0 && strcmp(argv[0], "zcopy") != 0 &&
	    strcmp(argv[0], "device") != 0 && strcmp(argv[0], "zerocopy-sysctl") != 0)
		usage();
	zk_check_name = argv[0];
	if (zk_env_init(dev, tx, rx, stx, srx) != 0)
		return (1);
	for (i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++)
		if (strcmp(argv[0], helpers[i].name) == 0) {
			r = helpers[i].fn(argc, argv);
			zk_env_fini();
			return (r == 0 ? 0 : 1);
		}
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (strcmp(argv[0], checks[i].name) == 0) {
			r = checks[i].fn();
			zk_env_fini();
			return (r == 0 ? 0 : 1);
		}
	usage();
	return (2);
}

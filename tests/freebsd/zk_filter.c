/*
 * zk_filter.c: a filter compiled by libpcap's compiler (pcap_compile, the
 * one tcpdump uses) is installed with BIOCSETF and applied by the device.
 */
#include "zk.h"

#include <pcap.h>
#include <stdlib.h>

struct fstate {
	uint16_t port;
	uint32_t expect;	/* next even seq */
	uint32_t got;
	int bad;
};

static int
on_frame(void *arg, const uint8_t *f, uint32_t caplen, uint32_t datalen)
{
	struct fstate *s = arg;
	long seq = zk_verify(f, caplen, datalen, s->port, 0);

	if (seq < 0)
		return (-1);
	if ((uint32_t)seq != s->expect)
		return (zk_fail("the filter let frame %ld through where %u was due", seq, s->expect));
	s->expect += 2;
	s->got++;
	return (0);
}

int
zk_check_filter(void)
{
	const uint16_t port = ZK_PORT_BASE + 9;
	const uint32_t n = 100;
	char expr[160];
	struct bpf_program prog;
	struct bpf_stat st;
	struct fstate s;
	struct timeval tv = { 0, 20000 };
	unsigned int blen = 16384;
	uint8_t *buf = NULL;
	pcap_t *dead;
	long deadline;
	uint32_t i;
	int fd = -1, rc = -1;

	/* IPv4 UDP to `port`, the kit's magic, and an even frame number (the
	 * low byte of the payload's seq field is UDP byte 15). */
	snprintf(expr, sizeof(expr),
	    "ip and udp dst port %u and udp[8:4] = 0x%08x and (udp[15] & 1) = 0",
	    port, ZK_MAGIC);
	dead = pcap_open_dead(DLT_EN10MB, 65535);
	if (dead == NULL)
		return (zk_fail("pcap_open_dead failed"));
	if (pcap_compile(dead, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		zk_fail("pcap_compile \"%s\": %s", expr, pcap_geterr(dead));
		pcap_close(dead);
		return (-1);
	}
	memset(&s, 0, sizeof(s));
	s.port = port;
	fd = zk_dev_open();
	if (fd < 0)
		goto out;
	buf = malloc(blen);
	if (buf == NULL || zk_ioctl(fd, BIOCSBLEN, &blen) != 0 ||
	    zk_ioctl(fd, BIOCSRTIMEOUT, &tv) != 0) {
		zk_fail("set-up: %s", strerror(errno));
		goto out;
	}
	if (zk_ioctl(fd, BIOCSETF, &prog) != 0) {
		zk_fail("BIOCSETF with libpcap's %u instructions: %s", prog.bf_len, strerror(errno));
		goto out;
	}
	if (zk_attach(fd, zk.rx_if) != 0)
		goto out;
	/* Every frame to `port`, and as many to the next port. */
	for (i = 0; i < n; i++)
		if (zk_send(i, port, 0) != 0 || zk_send(i, port + 1, 0) != 0)
			goto out;
	deadline = zk_now_ms() + 10000;
	while (s.got < n / 2 && zk_now_ms() < deadline) {
		ssize_t r = zk_read(fd, buf, blen);

		if (r < 0) {
			zk_fail("read: %s", strerror(errno));
			goto out;
		}
		if (zk_walk(buf, (size_t)r, on_frame, &s) != 0)
			goto out;
	}
	/* Nothing more may come. */
	{
		ssize_t r = zk_read(fd, buf, blen);

		if (r > 0) {
			zk_fail("after the %u frames the filter accepts, %zd more bytes came", s.got, r);
			goto out;
		}
	}
	if (s.got != n / 2) {
		zk_fail("%u of the %u frames the filter accepts arrived", s.got, n / 2);
		goto out;
	}
	if (zk_ioctl(fd, BIOCGSTATS, &st) != 0 || st.bs_recv < 2 * n || st.bs_drop != 0) {
		zk_fail("counters: received %u, dropped %u; %u frames crossed", st.bs_recv,
		    st.bs_drop, 2 * n);
		goto out;
	}
	zk_note("\"%s\": libpcap compiled %u instructions; of %u frames the device saw, "
	    "it passed exactly the %u even ones to port %u", expr, prog.bf_len, st.bs_recv,
	    s.got, port);
	rc = 0;
out:
	if (fd >= 0)
		zk_close(fd);
	free(buf);
	pcap_freecode(&prog);
	pcap_close(dead);
	return (rc);
}

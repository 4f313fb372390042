/*
 * ukld_taps.c: the harness's own checks of what a driver hands the real
 * zbpf.ko and what the module hands back, beyond the kit's UDP traffic:
 * mbuf chains of chosen shapes, hardware VLAN tags (M_VLANTAG), driver
 * timestamps (M_TSTMP, MTAG_BPF_TIMESTAMP), driver batches, writes as the
 * wire sees them (source MAC, M_BCAST, VLAN priority, sizes, the write
 * filter, feedback and direction), kqueue notes, the read-timeout callout
 * waking a poller, SIGIO, taps installed and removed, a rename, and the
 * net.bpf.stats records. Each check computes what the records must be
 * from the frames it injects.
 */
#include "zk.h"

#include <pcap.h>
#include <signal.h>
#include <stdlib.h>

#include "ukld.h"

/* FreeBSD's <sys/filio.h> numbers (the device takes FreeBSD's). */
#define ZK_FIONREAD	ZSIM_IOR('f', 127, int)
#define ZK_FIOASYNC	ZSIM_IOW('f', 125, int)
#define ZK_FIOSETOWN	ZSIM_IOW('f', 124, int)
#define ZK_FIOGETOWN	ZSIM_IOR('f', 123, int)
#define BSD_EVFILT_READ		(-1)
#define BSD_EVFILT_WRITE	(-2)
#define BSD_SIGIO	23

#define TBLEN		65536	/* buffer of the checks' descriptors */
#define XBPF_D_SIZE	168	/* struct xbpf_d on amd64 */

static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x5e, 0x10, 0x00, 0x02 };

/* ---- Frames ---- */

struct tframe {
	uint8_t b[1600];
	size_t len;
	struct ukk_frame_opts o;	/* o.vlan: b carries the tag */
	int inbound;
	int dport;
};

/* Ethernet + IPv4 + UDP, the payload a function of seed. */
static void
mk_udp(struct tframe *f, const uint8_t *dst, uint16_t sport, uint16_t dport,
    size_t payload, uint8_t seed)
{
	uint8_t *p = f->b;
	size_t i, ip = 20 + 8 + payload;

	memset(f, 0, sizeof(*f));
	memcpy(p, dst, 6);
	memcpy(p + 6, peer_mac, 6);
	p[12] = 0x08;
	p[13] = 0x00;
	p += 14;
	p[0] = 0x45;
	p[2] = (uint8_t)(ip >> 8);
	p[3] = (uint8_t)ip;
	p[5] = seed;
	p[8] = 64;
	p[9] = 17;
	memcpy(p + 12, "\x0a\x00\x00\x02\x0a\x00\x00\x01", 8);
	p += 20;
	p[0] = (uint8_t)(sport >> 8);
	p[1] = (uint8_t)sport;
	p[2] = (uint8_t)(dport >> 8);
	p[3] = (uint8_t)dport;
	p[4] = (uint8_t)((8 + payload) >> 8);
	p[5] = (uint8_t)(8 + payload);
	for (i = 0; i < payload; i++)
		p[8 + i] = (uint8_t)(i * 31 + seed);
	f->len = 14 + ip;
	f->dport = dport;
	f->inbound = 1;
}

/* An ARP-sized broadcast of ethertype 0x0806. */
static void
mk_arp(struct tframe *f, uint8_t seed)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	int i;

	mk_udp(f, bcast, 1, 1, 0, seed);
	f->b[12] = 0x08;
	f->b[13] = 0x06;
	for (i = 14; i < 42; i++)
		f->b[i] = (uint8_t)(i + seed);
	f->len = 42;
	f->dport = -1;
}

/* Inserts an 802.1Q header after the MACs, stripped by the "hardware". */
static void
mk_tagged(struct tframe *f, uint16_t tci)
{
	memmove(f->b + 16, f->b + 12, f->len - 12);
	f->b[12] = 0x81;
	f->b[13] = 0x00;
	f->b[14] = (uint8_t)(tci >> 8);
	f->b[15] = (uint8_t)tci;
	f->len += 4;
	f->o.vlan = 1;
}

/* The mbuf chain shapes (lengths of the leading mbufs). */
static const int shape0[] = { 0 }, shape1[] = { 14 }, shape2[] = { 0, 5, 0, 7, 3 },
    shape3[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
    shape4[] = { 6 }, shape5[] = { 12 }, shape6[] = { 13 }, shape7[] = { 100, 0, 100, 0 },
    shape8[] = { 11, 2, 40 };
static const struct { const int *c; int n; } shapes[] = {
	{ shape0, 0 }, { shape1, 1 }, { shape2, 5 }, { shape3, 20 }, { shape4, 1 },
	{ shape5, 1 }, { shape6, 1 }, { shape7, 4 }, { shape8, 3 },
};
#define NSHAPES	(sizeof(shapes) / sizeof(shapes[0]))

static void
set_shape(struct tframe *f, unsigned i)
{
	f->o.cuts = shapes[i % NSHAPES].c;
	f->o.ncuts = shapes[i % NSHAPES].n;
	f->o.lead = 8 * (int)(i % 4);
}

static int
inject(const char *ifname, const struct tframe *f)
{
	int e = ukk_if_inject_ex(ifname, f->b, f->len, f->inbound, &f->o);

	if (e != 0)
		return (zk_fail("ukk_if_inject_ex(%s): error %d", ifname, e));
	return (0);
}

/* ---- Records ---- */

struct rec {
	int64_t sec;
	uint64_t frac;
	uint32_t caplen, datalen;
	const uint8_t *data;
};

/* Splits a buffer into records (any timestamp format: the header's
 * timestamp is 16 bytes on amd64 in all of them). */
static int
split(const uint8_t *buf, size_t len, struct rec *r, int max)
{
	size_t off = 0;
	int n = 0;

	while (off < len) {
		uint16_t hdrlen;

		if (n == max || off + 26 > len)
			return (zk_fail("record %d: truncated or too many", n));
		memcpy(&r[n].sec, buf + off, 8);
		memcpy(&r[n].frac, buf + off + 8, 8);
		memcpy(&r[n].caplen, buf + off + 16, 4);
		memcpy(&r[n].datalen, buf + off + 20, 4);
		memcpy(&hdrlen, buf + off + 24, 2);
		if (hdrlen < 26 || off + hdrlen + r[n].caplen > len)
			return (zk_fail("record %d: bad header", n));
		r[n].data = buf + off + hdrlen;
		off += BPF_WORDALIGN(hdrlen + r[n].caplen);
		n++;
	}
	return (n);
}

/* What a non-blocking read of a TBLEN buffer returns now. */
static ssize_t
read_blen(int fd, uint8_t *buf, size_t blen)
{
	ssize_t n;

	zk_setnonblock(fd, 1);
	n = zk_read(fd, buf, blen);
	zk_setnonblock(fd, 0);
	if (n < 0 && errno == EAGAIN)
		n = 0;
	return (n);
}

static ssize_t
read_now(int fd, uint8_t *buf)
{
	return (read_blen(fd, buf, TBLEN));
}

/* Record r must be frame f cut at snap: bytes, caplen, datalen. */
static int
same(const struct rec *r, const struct tframe *f, uint32_t snap, int i)
{
	uint32_t want = f->len < snap ? (uint32_t)f->len : snap;

	if (r->datalen != f->len || r->caplen != want)
		return (zk_fail("record %d: caplen %u datalen %u, want %u %zu", i, r->caplen,
		    r->datalen, want, f->len));
	if (memcmp(r->data, f->b, want) != 0) {
		uint32_t k = 0;

		while (r->data[k] == f->b[k])
			k++;
		return (zk_fail("record %d (%zu bytes%s): byte %u is %02x, the frame has %02x", i,
		    f->len, f->o.vlan ? ", hardware VLAN tag" : "", k, r->data[k], f->b[k]));
	}
	return (0);
}

/* Reads and compares: exactly the frames of `want` (n of them). */
static int
expect_records(int fd, uint8_t *buf, const struct tframe *const *want, int n, uint32_t snap,
    const char *what)
{
	struct rec r[128];
	ssize_t len = read_now(fd, buf);
	int got, i;

	if (len < 0)
		return (zk_fail("%s: read: %s", what, strerror(errno)));
	got = split(buf, (size_t)len, r, 128);
	if (got < 0)
		return (-1);
	if (got != n)
		return (zk_fail("%s: %d records, want %d", what, got, n));
	for (i = 0; i < n; i++)
		if (same(&r[i], want[i], snap, i) != 0)
			return (zk_fail("%s: record %d differs", what, i));
	return (0);
}

static int
open_on(const char *ifname, uint8_t **buf)
{
	unsigned int v = TBLEN;
	int fd = zk_dev_open();

	if (fd < 0)
		return (-1);
	if (zk_ioctl(fd, BIOCSBLEN, &v) != 0 || v != TBLEN || zk_attach(fd, ifname) != 0) {
		zk_close(fd);
		return (zk_fail("BIOCSBLEN %u / BIOCSETIF %s: %s", v, ifname, strerror(errno)));
	}
	if (buf != NULL && *buf == NULL)
		*buf = malloc(TBLEN);
	return (fd);
}

static int
set_pcap(int fd, unsigned long cmd, const char *expr, int snap)
{
	struct bpf_program prog;
	pcap_t *dead = pcap_open_dead(DLT_EN10MB, snap);
	int r;

	if (dead == NULL || pcap_compile(dead, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		if (dead != NULL)
			pcap_close(dead);
		return (zk_fail("pcap_compile %s", expr));
	}
	r = zk_ioctl(fd, cmd, &prog);
	pcap_freecode(&prog);
	pcap_close(dead);
	if (r != 0)
		return (zk_fail("filter \"%s\": %s", expr, strerror(errno)));
	return (0);
}

/* ---- taps-chains: shapes, tags, batches, filters over chains ---- */

int
ukld_check_taps_chains(void)
{
	static struct tframe fr[64];
	const struct tframe *want[64];
	/* A driver batch longer than two of the module's (ZBPF_TAP_BATCH,
	 * 8 packets), so that the wrapper splits it. */
	const void *bl[19];
	uk_size_t ll[19];
	struct ukk_frame_opts ol[19];
	const int nbl = 19;
	struct bpf_stat st;
	uint8_t *buf = NULL;
	int fd, fd2 = -1, n = 0, i, k, e, rc = -1, jit;

	fd = open_on(zk.rx_if, &buf);
	if (fd < 0)
		return (-1);
	/* Every shape, untagged and tagged, in and out; then chains of the
	 * emulation's random shapes. */
	for (i = 0; i < (int)NSHAPES; i++) {
		mk_udp(&fr[n], zk.rx_mac, 40000 + i, 53 + i, 10 + 37 * i, (uint8_t)i);
		set_shape(&fr[n], i);
		fr[n].inbound = i % 3 != 2;
		n++;
		mk_udp(&fr[n], zk.rx_mac, 40100 + i, 53, 20 + 5 * i, (uint8_t)(100 + i));
		mk_tagged(&fr[n], 0x2064 + i);
		set_shape(&fr[n], i);
		fr[n].inbound = i % 3 != 1;
		n++;
	}
	for (i = 1; i <= 8; i++) {
		mk_udp(&fr[n], zk.rx_mac, 40200 + i, 9, 60 + 90 * i, (uint8_t)(200 + i));
		if (i % 2)
			mk_tagged(&fr[n], (uint16_t)(i * 300));
		fr[n].o.shape = 1000 + i;
		fr[n].inbound = i % 4 != 0;
		n++;
	}
	for (i = 0; i < n; i++) {
		if (inject(zk.rx_if, &fr[i]) != 0)
			goto out;
		want[i] = &fr[i];
	}
	/* A driver batch (m_nextpkt), which the wrapper offers eight at a
	 * time: the second eight each whole in one untagged mbuf (the tap's
	 * slice path), the others single mbufs among chains, some tagged (the
	 * chain path, for the whole eight). */
	for (i = 0; i < nbl; i++, n++) {
		int whole = i >= 8 && i < 16;

		mk_udp(&fr[n], zk.rx_mac, 40300 + i, 9, 60 + 7 * i, (uint8_t)(230 + i));
		if (i % 5 == 1 && !whole)
			mk_tagged(&fr[n], (uint16_t)(7 + i));
		set_shape(&fr[n], whole || i % 4 == 0 ? 0 : 2 + i % 3);
		bl[i] = fr[n].b;
		ll[i] = fr[n].len;
		ol[i] = fr[n].o;
		want[n] = &fr[n];
	}
	e = ukk_if_input_list(zk.rx_if, bl, ll, nbl, ol);
	if (e != 0) {
		zk_fail("ukk_if_input_list: error %d", e);
		goto out;
	}
	if (expect_records(fd, buf, want, n, 65535, "every shape") != 0)
		goto out;
	if (zk_ioctl(fd, BIOCGSTATS, &st) != 0 || st.bs_recv != (unsigned)n || st.bs_drop != 0) {
		zk_fail("BIOCGSTATS: received %u dropped %u, %d frames", st.bs_recv, st.bs_drop, n);
		goto out;
	}
	zk_note("%d frames (%zu chain shapes with 0..20 mbufs and empty ones, 8 random chains, "
	    "a %d-packet driver batch; half with a hardware VLAN tag; in and out): every record "
	    "is the frame byte for byte, in order, the tag after the MACs", n, NSHAPES, nbl);

	/* Filters over chains: a snap length; two native filters on the
	 * interface (a dispatcher); the reinserted tag is what a vlan filter
	 * sees, in the interpreter and compiled. */
	n = 0;
	for (i = 0; i < 12; i++, n++) {
		switch (i % 4) {
		case 0: mk_udp(&fr[n], zk.rx_mac, 41000 + i, 53, 100 + i, (uint8_t)i); break;
		case 1: mk_udp(&fr[n], zk.rx_mac, 41000 + i, 80, 100 + i, (uint8_t)i); break;
		case 2:
			mk_udp(&fr[n], zk.rx_mac, 41000 + i, 53, 90, (uint8_t)i);
			mk_tagged(&fr[n], 100);
			break;
		default: mk_arp(&fr[n], (uint8_t)i); break;
		}
		set_shape(&fr[n], i);
	}
	if (set_pcap(fd, BIOCSETF, "udp dst port 53", 64) != 0)
		goto out;
	fd2 = open_on(zk.rx_if, NULL);
	if (fd2 < 0 || set_pcap(fd2, BIOCSETF, "udp port 80", 96) != 0)
		goto out;
	for (i = 0; i < n; i++)
		if (inject(zk.rx_if, &fr[i]) != 0)
			goto out;
	for (i = k = 0; i < n; i++)
		if (!fr[i].o.vlan && fr[i].dport == 53)
			want[k++] = &fr[i];
	if (expect_records(fd, buf, want, k, 64, "udp dst port 53, snap 64") != 0)
		goto out;
	for (i = k = 0; i < n; i++)
		if (!fr[i].o.vlan && fr[i].dport == 80)
			want[k++] = &fr[i];
	if (expect_records(fd2, buf, want, k, 96, "second reader, udp port 80") != 0)
		goto out;
	for (i = k = 0; i < n; i++)
		if (fr[i].o.vlan)
			want[k++] = &fr[i];
	for (jit = 0; jit <= 1; jit++) {
		if (zk_sysctl_set("jit_enable", jit) != 0 ||
		    set_pcap(fd, BIOCSETFNR, "vlan 100 and udp", 256) != 0)
			goto out;
		for (i = 0; i < n; i++)
			if (inject(zk.rx_if, &fr[i]) != 0)
				goto out;
		if (expect_records(fd, buf, want, k, 256,
		    jit ? "vlan 100 and udp, compiled" : "vlan 100 and udp, interpreted") != 0)
			goto out;
	}
	zk_note("over chains: udp dst port 53 snap 64 and, on a second reader, udp port 80 snap 96 "
	    "passed exactly their frames; vlan 100 and udp (interpreter, then JIT) passed the %d "
	    "tagged ones", k);
	rc = 0;
out:
	(void)zk_sysctl_set("jit_enable", 1);
	if (fd2 >= 0)
		zk_close(fd2);
	zk_close(fd);
	free(buf);
	return (rc);
}

/* ---- taps-tstamp: driver timestamps become record timestamps ---- */

static int
one_record(int fd, uint8_t *buf, const struct tframe *f, struct rec *r, const char *what)
{
	ssize_t len = read_now(fd, buf);

	if (len <= 0 || split(buf, (size_t)len, r, 1) != 1)
		return (zk_fail("%s: no single record (%zd bytes)", what, len));
	return (same(r, f, 65535, 0));
}

int
ukld_check_taps_tstamp(void)
{
	struct tframe f;
	struct rec r;
	struct timespec now;
	uint8_t *buf = NULL;
	unsigned int fmt, on = 1;
	uint64_t ns;
	int64_t want_sec;
	uint64_t want_frac;
	int fd, rc = -1;

	fd = open_on(zk.rx_if, &buf);
	if (fd < 0)
		return (-1);
	mk_udp(&f, zk.rx_mac, 1, 1, 20, 1);
	set_shape(&f, 2);
	/* An uptime tag, BPF_T_BINTIME | BPF_T_MONOTONIC: the tag itself. */
	fmt = BPF_T_BINTIME | BPF_T_MONOTONIC;
	if (zk_ioctl(fd, BIOCIMMEDIATE, &on) != 0 || zk_ioctl(fd, BIOCSTSTAMP, &fmt) != 0) {
		zk_fail("BIOCSTSTAMP: %s", strerror(errno));
		goto out;
	}
	f.o.tstamp = UKK_TS_UPTIME;
	f.o.bt_sec = 1234;
	f.o.bt_frac = 0x4000000000000001ULL;
	if (inject(zk.rx_if, &f) != 0 || one_record(fd, buf, &f, &r, "uptime tag") != 0)
		goto out;
	if (r.sec != f.o.bt_sec || r.frac != f.o.bt_frac) {
		zk_fail("MTAG_BPF_TIMESTAMP {%lld, %#llx}: record time {%lld, %#llx}",
		    (long long)f.o.bt_sec, (unsigned long long)f.o.bt_frac, (long long)r.sec,
		    (unsigned long long)r.frac);
		goto out;
	}
	/* A wall-clock M_TSTMP, BPF_T_BINTIME: the stamp as a bintime. */
	fmt = BPF_T_BINTIME;
	if (zk_ioctl(fd, BIOCSTSTAMP, &fmt) != 0)
		goto out;
	ns = 1700000000ULL * 1000000000ULL + 123456789ULL;
	f.o.tstamp = UKK_TS_WALL;
	f.o.ts_ns = ns;
	if (inject(zk.rx_if, &f) != 0 || one_record(fd, buf, &f, &r, "M_TSTMP") != 0)
		goto out;
	/* timespec2bintime: frac = floor(nsec * 2^64 / 10^9). */
	want_sec = (int64_t)(ns / 1000000000ULL);
	want_frac = (uint64_t)(((unsigned __int128)(ns % 1000000000ULL) << 64) / 1000000000U);
	if (r.sec != want_sec || r.frac != want_frac) {
		zk_fail("M_TSTMP %llu ns: record time {%lld, %#llx}, want {%lld, %#llx}",
		    (unsigned long long)ns, (long long)r.sec, (unsigned long long)r.frac,
		    (long long)want_sec, (unsigned long long)want_frac);
		goto out;
	}
	/* No stamp: the clock, uptime plus the boot time. */
	f.o.tstamp = UKK_TS_NONE;
	clock_gettime(CLOCK_REALTIME, &now);
	if (inject(zk.rx_if, &f) != 0 || one_record(fd, buf, &f, &r, "unstamped") != 0)
		goto out;
	if (r.sec < now.tv_sec - 2 || r.sec > now.tv_sec + 2) {
		zk_fail("unstamped frame: record second %lld, the clock says %lld",
		    (long long)r.sec, (long long)now.tv_sec);
		goto out;
	}
	zk_note("MTAG_BPF_TIMESTAMP {1234, 0x4000000000000001} is the monotonic record time; "
	    "M_TSTMP %llu ns is the wall-clock record time; unstamped: the clock (%lld)",
	    (unsigned long long)ns, (long long)r.sec);
	rc = 0;
out:
	zk_close(fd);
	free(buf);
	return (rc);
}

/* ---- taps-writes: what the wire and the taps see of write(2) ---- */

struct sent {
	uint8_t b[2048];
	long len;
	int flags, pcp;
};

static int
last_sent(const char *ifname, struct sent *s)
{
	s->len = ukk_if_last_sent(ifname, s->b, sizeof(s->b), &s->flags, &s->pcp);
	return (s->len < 0 ? zk_fail("nothing sent on %s", ifname) : 0);
}

/* write(2) of f: `want` bytes written, or -1 with errno `err`. */
static int
expect_write(int fd, const struct tframe *f, ssize_t want, int err, const char *what)
{
	ssize_t w = zk_write(fd, f->b, f->len);

	if (w != want || (want < 0 && errno != err))
		return (zk_fail("%s: write of %zu bytes: %zd (%s)", what, f->len, w,
		    w < 0 ? strerror(errno) : "no error"));
	return (0);
}

/* Records now on fd: how many. */
static int
count_records(int fd, uint8_t *buf, struct rec *r, int max)
{
	ssize_t len = read_now(fd, buf);

	return (len < 0 ? -1 : split(buf, (size_t)len, r, max));
}

int
ukld_check_taps_writes(void)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct tframe f, g;
	struct sent s;
	uint8_t mac[6];
	struct rec r[8];
	uint8_t *buf = NULL;
	unsigned int v;
	int wfd, rfd = -1, in0, got, dir, fb, rc = -1;
	static const struct { int feedback, direction, want; } fbcase[] = {
		/* Feedback hides the original from every tap and feeds a copy
		 * in: a reader sees it once, as received. */
		{ 1, BPF_D_INOUT, 1 }, { 1, BPF_D_IN, 1 }, { 1, BPF_D_OUT, 0 },
		{ 0, BPF_D_INOUT, 1 }, { 0, BPF_D_IN, 0 }, { 0, BPF_D_OUT, 1 },
	};
	unsigned i;

	wfd = open_on(zk.tx_if, &buf);
	if (wfd < 0)
		return (-1);
	/* Header not complete: the interface's source MAC; the outbound tap
	 * sees the frame as sent. */
	mk_udp(&f, zk.rx_mac, 5353, 5353, 64, 1);
	memset(f.b + 6, 0x0a, 6);
	v = 1;
	if (zk_ioctl(wfd, BIOCIMMEDIATE, &v) != 0 ||
	    expect_write(wfd, &f, (ssize_t)f.len, 0, "plain") != 0 || last_sent(zk.tx_if, &s) != 0)
		goto out;
	g = f;
	if (ukk_if_lladdr(zk.tx_if, mac) != 0)
		goto out;
	memcpy(g.b + 6, mac, 6);
	if (s.len != (long)g.len || memcmp(s.b, g.b, g.len) != 0 || s.flags != 0 || s.pcp != -1) {
		zk_fail("written frame on the wire: %ld bytes, flags %d, pcp %d; want the frame "
		    "with %s's MAC as source", s.len, s.flags, s.pcp, zk.tx_if);
		goto out;
	}
	got = count_records(wfd, buf, r, 8);
	if (got != 1 || same(&r[0], &g, 65535, 0) != 0) {
		zk_fail("the writer's own tap: %d records, want the frame as sent", got);
		goto out;
	}
	/* Header complete: the source as written. */
	v = 1;
	if (zk_ioctl(wfd, BIOCSHDRCMPLT, &v) != 0 ||
	    expect_write(wfd, &f, (ssize_t)f.len, 0, "hdrcmplt") != 0 ||
	    last_sent(zk.tx_if, &s) != 0)
		goto out;
	if (s.len != (long)f.len || memcmp(s.b, f.b, f.len) != 0) {
		zk_fail("BIOCSHDRCMPLT: the wire's frame is not the one written");
		goto out;
	}
	/* Broadcast: M_BCAST. Priority: the vlan_set_pcp tag. */
	mk_udp(&g, bcast, 1, 2, 30, 2);
	if (expect_write(wfd, &g, (ssize_t)g.len, 0, "broadcast") != 0 ||
	    last_sent(zk.tx_if, &s) != 0 || s.flags != UKK_SENT_BCAST) {
		zk_fail("broadcast write: flags %d, want M_BCAST", s.flags);
		goto out;
	}
	v = 5;
	if (zk_ioctl(wfd, BIOCSETVLANPCP, &v) != 0 ||
	    expect_write(wfd, &f, (ssize_t)f.len, 0, "pcp") != 0 ||
	    last_sent(zk.tx_if, &s) != 0 || s.pcp != 5) {
		zk_fail("BIOCSETVLANPCP 5: the frame left with priority %d", s.pcp);
		goto out;
	}
	v = 0;
	(void)zk_ioctl(wfd, BIOCSETVLANPCP, &v);
	/* Sizes: short EMSGSIZE, empty 0, MTU+14 sent, one more EMSGSIZE. */
	g = f;
	g.len = 13;
	if (expect_write(wfd, &g, -1, EMSGSIZE, "shorter than a header") != 0)
		goto out;
	g.len = 0;
	if (expect_write(wfd, &g, 0, 0, "empty") != 0)
		goto out;
	mk_udp(&g, zk.rx_mac, 1, 3, 1500 - 28, 3);
	if (expect_write(wfd, &g, (ssize_t)g.len, 0, "MTU") != 0 ||
	    last_sent(zk.tx_if, &s) != 0 || s.len != (long)g.len)
		goto out;
	mk_udp(&g, zk.rx_mac, 1, 3, 1500 - 28 + 1, 3);
	if (expect_write(wfd, &g, -1, EMSGSIZE, "MTU + 1") != 0)
		goto out;
	/* The write filter: "ip" refuses an ARP frame with EPERM. */
	if (set_pcap(wfd, BIOCSETWF, "ip", 65535) != 0)
		goto out;
	mk_arp(&g, 4);
	if (expect_write(wfd, &g, -1, EPERM, "refused by the write filter") != 0 ||
	    expect_write(wfd, &f, (ssize_t)f.len, 0, "passed by the write filter") != 0)
		goto out;
	(void)read_now(wfd, buf);
	zk_note("the wire: the interface's MAC unless BIOCSHDRCMPLT, M_BCAST, priority 5; short "
	    "and MTU+1 EMSGSIZE, empty 0, MTU sent; BIOCSETWF refused ARP (EPERM)");

	/* Feedback and direction, seen by another reader on the writer's
	 * interface; the stack gets the fed-back copy. */
	rfd = open_on(zk.tx_if, NULL);
	if (rfd < 0 || zk_ioctl(rfd, BIOCIMMEDIATE, &v) != 0)
		goto out;
	for (i = 0; i < sizeof(fbcase) / sizeof(fbcase[0]); i++) {
		fb = fbcase[i].feedback;
		dir = fbcase[i].direction;
		if (zk_ioctl(wfd, BIOCFEEDBACK, &fb) != 0 ||
		    zk_ioctl(rfd, BIOCSDIRECTION, &dir) != 0) {
			zk_fail("BIOCFEEDBACK/BIOCSDIRECTION: %s", strerror(errno));
			goto out;
		}
		mk_udp(&g, zk.rx_mac, 4000, 4000 + i, 30, (uint8_t)(10 + i));
		in0 = ukk_if_received(zk.tx_if);
		if (expect_write(wfd, &g, (ssize_t)g.len, 0, "feedback") != 0)
			goto out;
		got = count_records(rfd, buf, r, 8);
		if (got != fbcase[i].want ||
		    ukk_if_received(zk.tx_if) - in0 != fb) {
			zk_fail("feedback %d, reader direction %d: %d records (want %d), %d frames "
			    "reached the stack (want %d)", fb, dir, got, fbcase[i].want,
			    ukk_if_received(zk.tx_if) - in0, fb);
			goto out;
		}
		if (got == 1 && r[0].caplen == g.len && memcmp(r[0].data + 12, g.b + 12,
		    g.len - 12) != 0) {
			zk_fail("feedback %d, direction %d: the record is not the frame", fb, dir);
			goto out;
		}
	}
	(void)read_now(wfd, buf);
	zk_note("BIOCFEEDBACK: the copy reached the stack and readers saw the frame once, as "
	    "received (IN 1, OUT 0); without it: once, as sent (IN 0, OUT 1)");
	rc = 0;
out:
	if (rfd >= 0)
		zk_close(rfd);
	zk_close(wfd);
	free(buf);
	return (rc);
}

/* ---- taps-notes: kqueue notes, the read-timeout callout, SIGIO ---- */

static volatile sig_atomic_t sigios;

static void
on_sigio(int sig)
{
	(void)sig;
	sigios++;
}

int
ukld_check_taps_notes(void)
{
	struct tframe f;
	struct timeval tv = { 0, 50000 };
	struct pollfd p;
	struct rec r[4];
	struct sigaction sa, old;
	uint8_t *buf = NULL;
	unsigned int on = 1, sig = 0;
	uk_i64 data;
	long t0, dt;
	ssize_t len;
	int fd, active, e, nr = -1, pid = getpid(), own = 0, rc = -1;

	fd = open_on(zk.rx_if, &buf);
	if (fd < 0)
		return (-1);
	mk_udp(&f, zk.rx_mac, 7, 7, 40, 7);
	set_shape(&f, 3);
	/* kqueue: read not active while empty; write active, data the MTU. */
	e = ukk_sys_kevent_probe(fd, BSD_EVFILT_READ, &active, &data);
	if (e != 0 || active) {
		zk_fail("EVFILT_READ with nothing captured: error %d, active %d", e, active);
		goto out;
	}
	e = ukk_sys_kevent_probe(fd, BSD_EVFILT_WRITE, &active, &data);
	if (e != 0 || !active || data != 1500) {
		zk_fail("EVFILT_WRITE: error %d, active %d, data %lld (want the MTU 1500)", e,
		    active, (long long)data);
		goto out;
	}
	/* Immediate: one frame makes the read note active with its bytes. */
	if (zk_ioctl(fd, BIOCIMMEDIATE, &on) != 0 || inject(zk.rx_if, &f) != 0)
		goto out;
	e = ukk_sys_kevent_probe(fd, BSD_EVFILT_READ, &active, &data);
	if (zk_ioctl(fd, ZK_FIONREAD, &nr) != 0)
		goto out;
	len = read_now(fd, buf);
	if (e != 0 || !active || data != len || nr != len || split(buf, (size_t)len, r, 4) != 1) {
		zk_fail("EVFILT_READ after a frame: active %d, data %lld; FIONREAD %d; read %zd",
		    active, (long long)data, nr, len);
		goto out;
	}
	/* The read timeout: poll arms the callout; its expiry makes a frame
	 * in the store buffer readable and wakes the poller. */
	on = 0;
	if (zk_ioctl(fd, BIOCIMMEDIATE, &on) != 0 || zk_ioctl(fd, BIOCSRTIMEOUT, &tv) != 0 ||
	    inject(zk.rx_if, &f) != 0)
		goto out;
	p.fd = fd;
	p.events = POLLIN;
	p.revents = 0;
	if (zk_poll(&p, 1, 0) != 0) {
		zk_fail("poll before the read timeout: readable");
		goto out;
	}
	t0 = zk_now_ms();
	e = zk_poll(&p, 1, 5000);
	dt = zk_now_ms() - t0;
	len = read_now(fd, buf);
	if (e != 1 || !(p.revents & POLLIN) || dt < 30 || dt > 3000 ||
	    split(buf, (size_t)len, r, 4) != 1 || same(&r[0], &f, 65535, 0) != 0) {
		zk_fail("poll with a 50 ms read timeout: %d (revents %#x) after %ld ms, then %zd "
		    "bytes", e, p.revents, dt, len);
		goto out;
	}
	/* SIGIO to the owner on a wakeup. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigio;
	sigaction(SIGIO, &sa, &old);
	sigios = 0;
	on = 1;
	if (zk_ioctl(fd, ZK_FIOSETOWN, &pid) != 0 || zk_ioctl(fd, ZK_FIOGETOWN, &own) != 0 ||
	    zk_ioctl(fd, BIOCGRSIG, &sig) != 0 || zk_ioctl(fd, ZK_FIOASYNC, &on) != 0 ||
	    zk_ioctl(fd, BIOCIMMEDIATE, &on) != 0) {
		zk_fail("FIOSETOWN/FIOGETOWN/BIOCGRSIG/FIOASYNC: %s", strerror(errno));
		sigaction(SIGIO, &old, NULL);
		goto out;
	}
	if (inject(zk.rx_if, &f) != 0) {
		sigaction(SIGIO, &old, NULL);
		goto out;
	}
	t0 = zk_now_ms();
	while (sigios == 0 && zk_now_ms() - t0 < 2000)
		zk_sleep_ms(1);
	on = 0;
	(void)zk_ioctl(fd, ZK_FIOASYNC, &on);
	sigaction(SIGIO, &old, NULL);
	if (own != pid || sig != BSD_SIGIO || sigios == 0) {
		zk_fail("FIOGETOWN %d (pid %d), BIOCGRSIG %u, %d SIGIO", own, pid, sig, (int)sigios);
		goto out;
	}
	zk_note("EVFILT_WRITE data 1500 (the MTU); EVFILT_READ active with data = FIONREAD = "
	    "the %zd bytes read; a 50 ms read timeout woke a poller after %ld ms; SIGIO "
	    "delivered to the owner", len, dt);
	rc = 0;
out:
	zk_close(fd);
	free(buf);
	return (rc);
}

/* ---- taps-install: BIOCSETIF installs, the last close removes ---- */

int
ukld_check_taps_install(void)
{
	struct tframe f;
	zk_ifreq ifr;
	uint8_t *buf = NULL;
	const struct tframe *want[1] = { &f };
	int a, b = -1, rc = -1;

	if (ukk_if_wrapped(zk.rx_if) != 0 || ukk_if_wrapped(zk.tx_if) != 0)
		return (zk_fail("%s or %s wrapped with no descriptor open", zk.rx_if, zk.tx_if));
	a = open_on(zk.rx_if, &buf);
	if (a < 0)
		return (-1);
	if (ukk_if_wrapped(zk.rx_if) != 1) {
		zk_fail("BIOCSETIF: %s's if_input/if_transmit not wrapped", zk.rx_if);
		goto out;
	}
	b = open_on(zk.rx_if, NULL);
	if (b < 0)
		goto out;
	zk_close(b);
	b = -1;
	if (ukk_if_wrapped(zk.rx_if) != 1) {
		zk_fail("closing one of two readers unwrapped %s", zk.rx_if);
		goto out;
	}
	/* Moving to another interface moves the tap. */
	if (zk_attach(a, zk.tx_if) != 0 || ukk_if_wrapped(zk.rx_if) != 0 ||
	    ukk_if_wrapped(zk.tx_if) != 1) {
		zk_fail("BIOCSETIF %s -> %s: wrapped %d, %d", zk.rx_if, zk.tx_if,
		    ukk_if_wrapped(zk.rx_if), ukk_if_wrapped(zk.tx_if));
		goto out;
	}
	/* A rename is announced as a departure: the reader stays. */
	if (ukk_if_rename(zk.tx_if, "ukren0") != 0) {
		zk_fail("ukk_if_rename");
		goto out;
	}
	mk_udp(&f, zk.tx_mac, 3, 3, 33, 3);
	set_shape(&f, 6);
	if (inject("ukren0", &f) != 0 ||
	    expect_records(a, buf, want, 1, 65535, "after a rename") != 0 ||
	    ukk_if_wrapped("ukren0") != 1) {
		zk_fail("a rename detached the reader");
		(void)ukk_if_rename("ukren0", zk.tx_if);
		goto out;
	}
	/* BIOCGETIF reads if_xname at the call, as FreeBSD's does. */
	memset(&ifr, 0, sizeof(ifr));
	if (zk_ioctl(a, BIOCGETIF, &ifr) != 0 ||
	    strcmp(ZK_IFR_NAME(ifr), "ukren0") != 0) {
		zk_fail("BIOCGETIF after renaming %s to ukren0: \"%s\" (%s)",
		    zk.tx_if, ZK_IFR_NAME(ifr), strerror(errno));
		(void)ukk_if_rename("ukren0", zk.tx_if);
		goto out;
	}
	if (ukk_if_rename("ukren0", zk.tx_if) != 0)
		goto out;
	zk_close(a);
	a = -1;
	if (ukk_if_wrapped(zk.tx_if) != 0) {
		zk_fail("the last close left %s wrapped", zk.tx_if);
		goto out;
	}
	zk_note("BIOCSETIF wraps if_input/if_transmit; a second reader's close keeps them; "
	    "BIOCSETIF to another interface moves them; a rename keeps the reader and BIOCGETIF "
	    "says the new name; the last "
	    "close gives the driver's back");
	rc = 0;
out:
	if (a >= 0)
		zk_close(a);
	if (b >= 0)
		zk_close(b);
	free(buf);
	return (rc);
}

/* ---- taps-stats: net.bpf.stats, drops, zeroing ---- */

static long
xstats(uint8_t *out, size_t cap)
{
	char name[64];
	uk_size_t len = cap;
	int e;

	snprintf(name, sizeof(name), "%s.stats", zk.sysctl);
	e = ukk_sysctl(name, out != NULL ? (uk_u64)(uintptr_t)out : 0, &len, 0, 0);
	return (e != 0 ? -e : (long)len);
}

static const uint8_t *
xrec_of(const uint8_t *x, long len, const char *ifname, int writer)
{
	long off;
	uint64_t w;

	for (off = 0; off + XBPF_D_SIZE <= len; off += XBPF_D_SIZE) {
		memcpy(&w, x + off + 96, 8);
		if (strncmp((const char *)x + off + 76, ifname, 16) == 0 && (w != 0) == writer)
			return (x + off);
	}
	return (NULL);
}

int
ukld_check_taps_stats(void)
{
	static uint8_t x[16 * XBPF_D_SIZE], zero[XBPF_D_SIZE];
	struct tframe f;
	struct bpf_stat st;
	const uint8_t *xr, *xw;
	uint8_t *buf = NULL;
	unsigned int small = 4096;
	uint64_t rcount, dcount, wcount;
	uint32_t ssize;
	int32_t bufsize, pid;
	long need, len, n, got = 0, more;
	struct rec r[64];
	char name[64];
	int fd, wfd = -1, e, rc = -1;

	fd = zk_dev_open();
	if (fd < 0)
		return (-1);
	buf = malloc(TBLEN);
	/* A write-only descriptor is listed as a writer (it writes before
	 * the reader attaches, which would see the frame leave). */
	wfd = zk_open(zk.device, O_WRONLY);
	if (wfd < 0 || zk_attach(wfd, zk.rx_if) != 0)
		goto out;
	mk_udp(&f, zk.tx_mac, 9, 9, 30, 9);
	if (zk_write(wfd, f.b, f.len) != (ssize_t)f.len) {
		zk_fail("write-only descriptor: write: %s", strerror(errno));
		goto out;
	}
	if (buf == NULL || zk_ioctl(fd, BIOCSBLEN, &small) != 0 || zk_attach(fd, zk.rx_if) != 0)
		goto out;
	/* Frames enough for two buffers and more: some are dropped. */
	for (n = 0; n < 12; n++) {
		mk_udp(&f, zk.rx_mac, 100, 7, 1000, (uint8_t)n);
		set_shape(&f, (unsigned)n);
		if (inject(zk.rx_if, &f) != 0)
			goto out;
	}
	while ((len = read_blen(fd, buf, small)) > 0 && (more = split(buf, (size_t)len, r, 64)) > 0)
		got += more;
	if (zk_ioctl(fd, BIOCGSTATS, &st) != 0 || st.bs_recv != 12 ||
	    st.bs_drop != 12 - (unsigned)got || got == 12) {
		zk_fail("12 frames of 1 kB into %u-byte buffers: %ld read, received %u, dropped %u",
		    small, got, st.bs_recv, st.bs_drop);
		goto out;
	}
	need = xstats(NULL, 0);
	len = xstats(x, sizeof(x));
	if (need <= 0 || len != need || len % XBPF_D_SIZE != 0) {
		zk_fail("net.bpf.stats: size %ld, read %ld", need, len);
		goto out;
	}
	xr = xrec_of(x, len, zk.rx_if, 0);
	xw = xrec_of(x, len, zk.rx_if, 1);
	if (xr == NULL || xw == NULL) {
		zk_fail("net.bpf.stats: no reader or no writer record on %s", zk.rx_if);
		goto out;
	}
	memcpy(&ssize, xr, 4);
	memcpy(&rcount, xr + 32, 8);
	memcpy(&dcount, xr + 40, 8);
	memcpy(&bufsize, xr + 68, 4);
	memcpy(&pid, xr + 72, 4);
	memcpy(&wcount, xw + 96, 8);
	if (ssize != XBPF_D_SIZE || rcount != st.bs_recv || dcount != st.bs_drop ||
	    bufsize != (int32_t)small || pid != getpid() || wcount != 1) {
		zk_fail("reader record: size %u rcount %llu dcount %llu bufsize %d pid %d; writer "
		    "wcount %llu", ssize, (unsigned long long)rcount, (unsigned long long)dcount,
		    bufsize, pid, (unsigned long long)wcount);
		goto out;
	}
	/* Too small a buffer: ENOMEM. A non-zero record: EINVAL. Zeros: the
	 * counters go to zero. */
	snprintf(name, sizeof(name), "%s.stats", zk.sysctl);
	{
		uk_size_t l = XBPF_D_SIZE / 2;

		e = ukk_sysctl(name, (uk_u64)(uintptr_t)x, &l, 0, 0);
	}
	if (e != 12) {
		zk_fail("net.bpf.stats into %d bytes: error %d, want ENOMEM", XBPF_D_SIZE / 2, e);
		goto out;
	}
	memset(x, 1, XBPF_D_SIZE);
	e = ukk_sysctl(name, 0, NULL, (uk_u64)(uintptr_t)x, XBPF_D_SIZE);
	if (e != 22) {
		zk_fail("net.bpf.stats write of a non-zero record: error %d, want EINVAL", e);
		goto out;
	}
	e = ukk_sysctl(name, 0, NULL, (uk_u64)(uintptr_t)zero, XBPF_D_SIZE);
	if (e != 0 || zk_ioctl(fd, BIOCGSTATS, &st) != 0 || st.bs_recv != 0 || st.bs_drop != 0) {
		zk_fail("net.bpf.stats write of zeros: error %d, then received %u dropped %u", e,
		    st.bs_recv, st.bs_drop);
		goto out;
	}
	zk_note("12 frames into 4 kB buffers: %ld read, BIOCGSTATS and net.bpf.stats agree on "
	    "received 12, dropped %ld; a write-only descriptor is a writer record; a short "
	    "buffer ENOMEM, a non-zero write EINVAL, a zero write zeroes the counters", got,
	    12 - got);
	rc = 0;
out:
	if (wfd >= 0)
		zk_close(wfd);
	zk_close(fd);
	free(buf);
	return (rc);
}

/* ---- taps-zbuf-pages: held pages follow BIOCSETZBUF and close ---- */

int
ukld_check_taps_zbuf_pages(void)
{
	struct bpf_zbuf bz;
	unsigned int mode = BPF_BUFMODE_ZBUF;
	const size_t len = 3 * 4096;
	uint8_t *a, *b;
	int fd, held0, kva0, rc = -1;

	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANON, -1, 0);
	b = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_ANON, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		return (zk_fail("mmap"));
	fd = zk_dev_open();
	if (fd < 0 || zk_ioctl(fd, BIOCSETBUFMODE, &mode) != 0)
		goto out;
	held0 = uh_phys_held();
	kva0 = uh_kva_reserved();
	bz.bz_bufa = a;
	bz.bz_bufb = b;
	bz.bz_buflen = len;
	if (zk_ioctl(fd, BIOCSETZBUF, &bz) == 0 || errno != EFAULT || uh_phys_held() != held0) {
		zk_fail("BIOCSETZBUF with a read-only buffer: %s, %d pages held (were %d)",
		    strerror(errno), uh_phys_held(), held0);
		goto out;
	}
	mprotect(b, len, PROT_READ | PROT_WRITE);
	if (zk_ioctl(fd, BIOCSETZBUF, &bz) != 0 || uh_phys_held() != held0 + 6) {
		zk_fail("BIOCSETZBUF: %s, %d pages held, want %d", strerror(errno),
		    uh_phys_held(), held0 + 6);
		goto out;
	}
	/* Each buffer's pages also mapped one after the other. */
	if (uh_kva_reserved() != kva0 + 2) {
		zk_fail("BIOCSETZBUF: %d kernel address ranges, want %d", uh_kva_reserved(),
		    kva0 + 2);
		goto out;
	}
	zk_close(fd);
	fd = -1;
	if (uh_phys_held() != held0 || uh_kva_reserved() != kva0) {
		zk_fail("close left %d pages held (were %d), %d kernel address ranges "
		    "(were %d)", uh_phys_held(), held0, uh_kva_reserved(), kva0);
		goto out;
	}
	zk_note("a refused BIOCSETZBUF (read-only second buffer, EFAULT) holds no page; a "
	    "good one holds both buffers' 6 and maps each buffer's pages in a row; close "
	    "gives them back");
	rc = 0;
out:
	if (fd >= 0)
		zk_close(fd);
	munmap(a, len);
	munmap(b, len);
	return (rc);
}

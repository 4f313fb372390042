/*
 * zk_common.c: the kit's setting, generated traffic, frame checks and
 * device helpers. See zk.h.
 */
#include "zk.h"

#include <stdarg.h>
#include <stdlib.h>

#ifndef ZK_SIM
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if_dl.h>
#include <netinet/in.h>
#include <sys/sysctl.h>
#endif

struct zk_env zk;
const char *zk_check_name = "kit";

static void
vnote(const char *fmt, va_list ap)
{
	printf("  %s: ", zk_check_name);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
}

void
zk_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnote(fmt, ap);
	va_end(ap);
}

int
zk_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnote(fmt, ap);
	va_end(ap);
	return (-1);
}

long
zk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int
zk_run_checks(const struct zk_check *checks, size_t n, int argc, char **argv)
{
	size_t i;
	int a, passed = 0, failed = 0;

	for (i = 0; i < n; i++) {
		int wanted = argc < 2;

		for (a = 1; a < argc; a++)
			if (strcmp(argv[a], checks[i].name) == 0)
				wanted = 1;
		if (!wanted)
			continue;
		zk_check_name = checks[i].name;
		long t0 = zk_now_ms();
		int r = checks[i].fn();
		printf("%s %s (%ld ms)\n", r == 0 ? "PASS" : "FAIL", checks[i].name,
		    zk_now_ms() - t0);
		if (r == 0)
			passed++;
		else
			failed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return (failed != 0);
}

long
zk_deadline_ms(long ms)
{
	static long pct = -1;

	if (pct < 0) {
		const char *e = getenv("ZK_DEADLINE_PCT");

		pct = (e != NULL && atol(e) > 0) ? atol(e) : 100;
	}
	return (zk_now_ms() + ms * pct / 100);
}

void
zk_sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- The setting. ---- */

#define ZK_TX_IP	0xc6120001U	/* 198.18.0.1 (RFC 2544 benchmarking) */
#define ZK_RX_IP	0xc6120002U	/* 198.18.0.2 */

#ifdef ZK_SIM
int
zk_env_init(const char *device, const char *tx_if, const char *rx_if,
    const char *spare_tx, const char *spare_rx)
{
	static const uint8_t txm[6] = { 0x02, 0x7a, 0x6b, 0x00, 0x00, 0x0a };
	static const uint8_t rxm[6] = { 0x02, 0x7a, 0x6b, 0x00, 0x00, 0x0b };
	const char *names[4] = { tx_if, rx_if, spare_tx, spare_rx };
	int i;

	memset(&zk, 0, sizeof(zk));
	zk.device = device;
	zk.sysctl = strstr(device, "/zbpf") != NULL ? "net.zbpf" : "net.bpf";
	zk.tx_if = tx_if;
	zk.rx_if = rx_if;
	zk.spare_tx = spare_tx;
	zk.spare_rx = spare_rx;
	memcpy(zk.tx_mac, txm, 6);
	memcpy(zk.rx_mac, rxm, 6);
	zk.tx_ip = ZK_TX_IP;
	zk.rx_ip = ZK_RX_IP;
	zk.sock = -1;
	for (i = 0; i < 4; i++)
		if (zsim_iface_add(names[i]) != 0 && errno != EBUSY)
			return (zk_fail("zsim_iface_add(%s): %s", names[i], strerror(errno)));
	if (zsim_iface_pair(tx_if, rx_if) != 0 || zsim_iface_pair(spare_tx, spare_rx) != 0)
		return (zk_fail("zsim_iface_pair: %s", strerror(errno)));
	return (0);
}

void
zk_env_fini(void)
{
}

int
zk_sysctl_get(const char *leaf, int *value)
{
	return (zsim_sysctl_get(leaf, value));
}

int
zk_sysctl_set(const char *leaf, int value)
{
	return (zsim_sysctl_set(leaf, value));
}

/* The simulator's interface departs. */
int zk_iface_destroy(const char *name);
int
zk_iface_destroy(const char *name)
{
	return (zsim_iface_remove(name));
}
#else
static int
zk_lladdr(const char *ifname, uint8_t mac[6])
{
	struct ifaddrs *ifa, *i;
	int found = -1;

	if (getifaddrs(&ifa) != 0)
		return (zk_fail("getifaddrs: %s", strerror(errno)));
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_LINK ||
		    strcmp(i->ifa_name, ifname) != 0)
			continue;
		struct sockaddr_dl *sdl = (struct sockaddr_dl *)(void *)i->ifa_addr;
		if (sdl->sdl_alen == 6) {
			memcpy(mac, LLADDR(sdl), 6);
			found = 0;
		}
	}
	freeifaddrs(ifa);
	if (found != 0)
		return (zk_fail("no Ethernet address for interface %s", ifname));
	return (0);
}

int
zk_env_init(const char *device, const char *tx_if, const char *rx_if,
    const char *spare_tx, const char *spare_rx)
{
	struct sockaddr_in sin;

	memset(&zk, 0, sizeof(zk));
	zk.device = device;
	zk.sysctl = strstr(device, "/zbpf") != NULL ? "net.zbpf" : "net.bpf";
	zk.tx_if = tx_if;
	zk.rx_if = rx_if;
	zk.spare_tx = spare_tx;
	zk.spare_rx = spare_rx;
	zk.tx_ip = ZK_TX_IP;
	zk.rx_ip = ZK_RX_IP;
	zk.sock = -1;
	if (strcmp(tx_if, "none") == 0)
		return (0);	/* a helper that needs no traffic */
	if (zk_lladdr(tx_if, zk.tx_mac) != 0 || zk_lladdr(rx_if, zk.rx_mac) != 0)
		return (-1);
	zk.sock = socket(AF_INET, SOCK_DGRAM, 0);
	if (zk.sock < 0)
		return (zk_fail("socket: %s", strerror(errno)));
	memset(&sin, 0, sizeof(sin));
	sin.sin_len = sizeof(sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(ZK_SPORT);
	sin.sin_addr.s_addr = htonl(zk.tx_ip);
	if (bind(zk.sock, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return (zk_fail("bind 198.18.0.1:%d (is 198.18.0.1/24 on %s?): %s",
		    ZK_SPORT, tx_if, strerror(errno)));
	return (0);
}

int
zk_sysctl_get(const char *leaf, int *value)
{
	char name[64];
	size_t len = sizeof(*value);

	snprintf(name, sizeof(name), "%s.%s", zk.sysctl, leaf);
	return (sysctlbyname(name, value, &len, NULL, 0));
}

int
zk_sysctl_set(const char *leaf, int value)
{
	char name[64];

	snprintf(name, sizeof(name), "%s.%s", zk.sysctl, leaf);
	return (sysctlbyname(name, NULL, NULL, &value, sizeof(value)));
}

void
zk_env_fini(void)
{
	if (zk.sock >= 0)
		close(zk.sock);
	zk.sock = -1;
}

/* Destroys a cloned interface (SIOCIFDESTROY). */
int zk_iface_destroy(const char *name);
int
zk_iface_destroy(const char *name)
{
	struct ifreq ifr;
	int s, r;

	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		return (-1);
	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	r = ioctl(s, SIOCIFDESTROY, &ifr);
	close(s);
	return (r);
}
#endif /* ZK_SIM */

/* ---- Frames. ---- */

#define ETH_LEN		14
#define IP_LEN		20
#define UDP_LEN		8
#define HDRS_LEN	(ETH_LEN + IP_LEN + UDP_LEN)
#define PAYLOAD_MIN	12

size_t
zk_payload_len(uint32_t seq, size_t fixed_len)
{
	if (fixed_len != 0)
		return (fixed_len);
	/* 12 to 1011 bytes, varying with seq so that records and their
	 * padding take every size modulo the alignment. */
	return (PAYLOAD_MIN + (seq * 37u + (seq >> 3)) % 1000u);
}

static void
fill_payload(uint8_t *p, size_t len, uint32_t seq)
{
	size_t k;

	p[0] = (uint8_t)(ZK_MAGIC >> 24);
	p[1] = (uint8_t)(ZK_MAGIC >> 16);
	p[2] = (uint8_t)(ZK_MAGIC >> 8);
	p[3] = (uint8_t)ZK_MAGIC;
	p[4] = (uint8_t)(seq >> 24);
	p[5] = (uint8_t)(seq >> 16);
	p[6] = (uint8_t)(seq >> 8);
	p[7] = (uint8_t)seq;
	p[8] = (uint8_t)(len >> 8);
	p[9] = (uint8_t)len;
	p[10] = 0x5a;
	p[11] = 0xa5;
	for (k = PAYLOAD_MIN; k < len; k++)
		p[k] = (uint8_t)(seq * 7u + k * 13u);
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t
get16(const uint8_t *p)
{
	return ((uint16_t)(p[0] << 8 | p[1]));
}

static uint32_t
get32(const uint8_t *p)
{
	return ((uint32_t)get16(p) << 16 | get16(p + 2));
}

static uint32_t
sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return (sum);
}

static uint16_t
fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ((uint16_t)~sum);
}

static uint16_t
udp_sum(const uint8_t *ip, const uint8_t *udp, size_t ulen)
{
	uint32_t s = 0;

	s = sum16(ip + 12, 8, s);	/* addresses */
	s += 17;
	s += (uint32_t)ulen;
	s = sum16(udp, ulen, s);
	return (fold(s));
}

size_t
zk_build_frame(uint8_t *f, size_t cap, uint32_t seq, uint16_t port, size_t fixed_len)
{
	size_t plen = zk_payload_len(seq, fixed_len);
	size_t len = HDRS_LEN + plen;
	uint8_t *ip = f + ETH_LEN, *udp = ip + IP_LEN;
	uint16_t c;

	if (len > cap)
		return (0);
	memcpy(f, zk.rx_mac, 6);
	memcpy(f + 6, zk.tx_mac, 6);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(IP_LEN + UDP_LEN + plen));
	put16(ip + 4, (uint16_t)seq);
	put16(ip + 6, 0);
	ip[8] = 64;
	ip[9] = 17;
	put16(ip + 10, 0);
	put32(ip + 12, zk.tx_ip);
	put32(ip + 16, zk.rx_ip);
	put16(ip + 10, fold(sum16(ip, IP_LEN, 0)));
	put16(udp, ZK_SPORT);
	put16(udp + 2, port);
	put16(udp + 4, (uint16_t)(UDP_LEN + plen));
	put16(udp + 6, 0);
	fill_payload(udp + UDP_LEN, plen, seq);
	c = udp_sum(ip, udp, UDP_LEN + plen);
	put16(udp + 6, c == 0 ? 0xffff : c);
	return (len);
}

int
zk_send(uint32_t seq, uint16_t port, size_t fixed_len)
{
#ifdef ZK_SIM
	uint8_t f[2048];
	size_t len = zk_build_frame(f, sizeof(f), seq, port, fixed_len);

	/* The tx interface sends it: its transmit tap, then the peer's
	 * receive tap, as on an epair. */
	if (len == 0 || zsim_inject(zk.tx_if, f, len, 0) != 0)
		return (zk_fail("zsim_inject(%s): %s", zk.tx_if, strerror(errno)));
	return (0);
#else
	uint8_t p[1500];
	size_t plen = zk_payload_len(seq, fixed_len);
	struct sockaddr_in to;
	int tries;

	fill_payload(p, plen, seq);
	memset(&to, 0, sizeof(to));
	to.sin_len = sizeof(to);
	to.sin_family = AF_INET;
	to.sin_port = htons(port);
	to.sin_addr.s_addr = htonl(zk.rx_ip);
	for (tries = 0; tries < 200; tries++) {
		if (sendto(zk.sock, p, plen, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)plen)
			return (0);
		if (errno != ENOBUFS && errno != EAGAIN)
			break;
		zk_sleep_ms(1);	/* the interface queue is full: let it drain */
	}
	return (zk_fail("sendto 198.18.0.2:%u: %s", port, strerror(errno)));
#endif
}

long
zk_verify(const uint8_t *f, uint32_t caplen, uint32_t datalen, uint16_t port,
    size_t fixed_len)
{
	const uint8_t *ip = f + ETH_LEN, *udp = ip + IP_LEN, *pl = udp + UDP_LEN;
	uint8_t want[1500];
	uint32_t seq;
	size_t plen;
	uint16_t c;

	if (caplen != datalen)
		return (zk_fail("frame captured short: caplen %u, datalen %u", caplen, datalen));
	if (caplen < HDRS_LEN + PAYLOAD_MIN)
		return (zk_fail("frame too short: %u bytes", caplen));
	if (memcmp(f, zk.rx_mac, 6) != 0 || memcmp(f + 6, zk.tx_mac, 6) != 0 ||
	    get16(f + 12) != 0x0800)
		return (zk_fail("Ethernet header differs (type 0x%04x)", get16(f + 12)));
	if (ip[0] != 0x45 || ip[1] != 0 || ip[9] != 17 || (get16(ip + 6) & 0x3fff) != 0 ||
	    ip[8] == 0 || get32(ip + 12) != zk.tx_ip || get32(ip + 16) != zk.rx_ip)
		return (zk_fail("IPv4 header differs"));
	if (get16(ip + 2) != caplen - ETH_LEN)
		return (zk_fail("IPv4 length %u, frame %u", get16(ip + 2), caplen));
	if (fold(sum16(ip, IP_LEN, 0)) != 0)
		return (zk_fail("IPv4 header checksum wrong (0x%04x)", get16(ip + 10)));
	if (get16(udp) != ZK_SPORT || get16(udp + 2) != port ||
	    get16(udp + 4) != caplen - ETH_LEN - IP_LEN)
		return (zk_fail("UDP header differs (ports %u > %u, want %u > %u)",
		    get16(udp), get16(udp + 2), ZK_SPORT, port));
	c = get16(udp + 6);
	if (c != 0 && udp_sum(ip, udp, caplen - ETH_LEN - IP_LEN) != 0)
		return (zk_fail("UDP checksum wrong (0x%04x)", c));
	if (get32(pl) != ZK_MAGIC)
		return (zk_fail("payload is not the kit's (magic 0x%08x)", get32(pl)));
	seq = get32(pl + 4);
	plen = zk_payload_len(seq, fixed_len);
	if (plen != caplen - HDRS_LEN)
		return (zk_fail("frame %u: payload %u bytes, want %zu", seq, caplen - HDRS_LEN, plen));
	fill_payload(want, plen, seq);
	if (memcmp(pl, want, plen) != 0)
		return (zk_fail("frame %u: payload bytes differ", seq));
#ifdef ZK_SIM
	{
		/* The simulator's frames are the kit's own: all bytes known. */
		uint8_t whole[2048];
		size_t n = zk_build_frame(whole, sizeof(whole), seq, port, fixed_len);

		if (n != caplen || memcmp(whole, f, n) != 0)
			return (zk_fail("frame %u differs from the one injected", seq));
	}
#endif
	return ((long)seq);
}

/* ---- Filters, device, records. ---- */

struct bpf_program *
zk_udp_port_filter(uint16_t port)
{
	/* ip and udp and not a fragment and udp dst port `port` */
	static struct bpf_insn insns[11];
	static struct bpf_program prog;
	const struct bpf_insn p[11] = {
		BPF_STMT(BPF_LD + BPF_H + BPF_ABS, 12),
		BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, 0x0800, 0, 8),
		BPF_STMT(BPF_LD + BPF_B + BPF_ABS, 23),
		BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, 17, 0, 6),
		BPF_STMT(BPF_LD + BPF_H + BPF_ABS, 20),
		BPF_JUMP(BPF_JMP + BPF_JSET + BPF_K, 0x1fff, 4, 0),
		BPF_STMT(BPF_LDX + BPF_B + BPF_MSH, 14),
		BPF_STMT(BPF_LD + BPF_H + BPF_IND, 16),
		BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, port, 0, 1),
		BPF_STMT(BPF_RET + BPF_K, (u_int)-1),
		BPF_STMT(BPF_RET + BPF_K, 0),
	};

	memcpy(insns, p, sizeof(p));
	prog.bf_len = 11;
	prog.bf_insns = insns;
	return (&prog);
}

int
zk_dev_open(void)
{
	int fd = zk_open(zk.device, O_RDWR);

	if (fd < 0)
		zk_fail("open %s: %s", zk.device, strerror(errno));
	return (fd);
}

int
zk_attach(int fd, const char *ifname)
{
	zk_ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ZK_IFR_NAME(ifr), sizeof(ZK_IFR_NAME(ifr)), "%s", ifname);
	if (zk_ioctl(fd, BIOCSETIF, &ifr) != 0)
		return (zk_fail("BIOCSETIF %s: %s", ifname, strerror(errno)));
	return (0);
}

int
zk_walk(const uint8_t *buf, size_t len, zk_record_fn fn, void *arg)
{
	size_t off = 0;

	while (off < len) {
		struct bpf_hdr h;

		if (len - off < offsetof(struct bpf_hdr, bh_hdrlen) + sizeof(h.bh_hdrlen))
			return (zk_fail("record header cut at offset %zu of %zu", off, len));
		memcpy(&h, buf + off, len - off < sizeof(h) ? len - off : sizeof(h));
		if (h.bh_hdrlen < 18 || h.bh_hdrlen > 64 || h.bh_caplen > len - off ||
		    off + h.bh_hdrlen + h.bh_caplen > len)
			return (zk_fail("malformed record at offset %zu: hdrlen %u caplen %u in %zu",
			    off, h.bh_hdrlen, h.bh_caplen, len));
		if (fn(arg, buf + off + h.bh_hdrlen, h.bh_caplen, h.bh_datalen) != 0)
			return (-1);
		off += BPF_WORDALIGN(h.bh_hdrlen + h.bh_caplen);
	}
	return (0);
}

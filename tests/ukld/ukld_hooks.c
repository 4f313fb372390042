/*
 * ukld_hooks.c: the harness's checks of zbpf's if_input/if_transmit hooks
 * and of its load path, against the real zbpf.ko: a hook under another
 * module's wrappers (netmap's generic mode) stays as a pass-through and
 * holds the unload off; so does one on an interface whose driver calls
 * if_input outside the network epoch (IFF_NEEDSEPOCH), until the
 * interface leaves; a departing interface is not asked to leave
 * promiscuous mode; hundreds of interfaces come and go without leaving
 * hooks behind; lagg(4) and if_bridge(4) are refused; a stats write of the
 * wrong size is refused; the device is created once.
 */
#include "zk.h"

#include "ukld.h"

/* ukld_kit.c: kldunload of the loaded module (0, or why it was refused),
 * and whether a built-in bpf held the names first. */
int ukld_kit_kldunload(void);
extern int ukld_kit_side_by_side;

#define HBLEN		8192	/* buffer of the checks' descriptors */
#define XBPF_D_SIZE	168	/* struct xbpf_d on amd64 */
#define BSD_IFF_NEEDSEPOCH	0x20
#define BSD_IFT_ETHER		0x06
#define BSD_IFT_IEEE8023ADLAG	0xa1
#define BSD_IFT_BRIDGE		0xd1

/* ---- Frames and records ---- */

struct hframe {
	uint8_t b[256];
	size_t len;
};

/* A broadcast of a local experimental ethertype, its bytes from seed. */
static void
mk_frame(struct hframe *f, unsigned seed)
{
	size_t i;

	f->len = 60 + seed % 97;
	memset(f->b, 0xff, 6);
	memcpy(f->b + 6, "\x02\x00\x5e\x20\x00\x01", 6);
	f->b[12] = 0x88;
	f->b[13] = 0xb5;
	for (i = 14; i < f->len; i++)
		f->b[i] = (uint8_t)(i * 7 + seed);
}

static int
inject(const char *ifname, const struct hframe *f)
{
	int e = ukk_if_inject(ifname, f->b, f->len, 1, 0);

	if (e != 0)
		return (zk_fail("ukk_if_inject(%s): error %d", ifname, e));
	return (0);
}

struct expect {
	const struct hframe *f;
	int n, bad;
};

static int
expect_rec(void *arg, const uint8_t *frame, uint32_t caplen, uint32_t datalen)
{
	struct expect *e = arg;

	e->n++;
	if (datalen != e->f->len || caplen != e->f->len || memcmp(frame, e->f->b, caplen) != 0)
		e->bad++;
	return (0);
}

/* What a non-blocking read returns now: every record must be f; returns
 * how many there were, -1 (with a note) on an error or another record. */
static int
records_of(int fd, const struct hframe *f, const char *what)
{
	static uint8_t buf[HBLEN];
	struct expect e = { f, 0, 0 };
	ssize_t n;

	zk_setnonblock(fd, 1);
	n = zk_read(fd, buf, sizeof(buf));
	zk_setnonblock(fd, 0);
	if (n < 0 && errno == EAGAIN)
		n = 0;
	if (n < 0)
		return (zk_fail("%s: read: %s", what, strerror(errno)));
	if (zk_walk(buf, (size_t)n, expect_rec, &e) != 0)
		return (-1);
	if (e.bad != 0)
		return (zk_fail("%s: %d of %d records are not the frame", what, e.bad, e.n));
	return (e.n);
}

/* Open, a known buffer size, immediate mode, BIOCSETIF ifname. */
static int
open_on(const char *ifname)
{
	unsigned int blen = HBLEN, on = 1;
	int fd = zk_dev_open();

	if (fd < 0)
		return (-1);
	if (zk_ioctl(fd, BIOCSBLEN, &blen) != 0 || zk_ioctl(fd, BIOCIMMEDIATE, &on) != 0) {
		zk_close(fd);
		return (zk_fail("BIOCSBLEN/BIOCIMMEDIATE: %s", strerror(errno)));
	}
	if (zk_attach(fd, ifname) != 0) {
		zk_close(fd);
		return (-1);
	}
	return (fd);
}

/* A frame in: want_rec records of it on fd (-1: no reader), the driver
 * gets it once, the stacked wrappers count it want_stk times. */
static int
frame_through(const char *ifname, int fd, unsigned seed, int want_rec, int want_stk,
    const char *what)
{
	struct hframe f;
	int drv0 = ukk_if_received(ifname), stk0 = ukk_if_stacked_frames(ifname), got = 0;

	mk_frame(&f, seed);
	if (inject(ifname, &f) != 0)
		return (-1);
	if (fd >= 0 && (got = records_of(fd, &f, what)) < 0)
		return (-1);
	if (got != want_rec || ukk_if_received(ifname) - drv0 != 1 ||
	    ukk_if_stacked_frames(ifname) - stk0 != want_stk)
		return (zk_fail("%s: %d records (want %d), the driver got %d (want 1), the other "
		    "module's wrapper counted %d (want %d)", what, got, want_rec,
		    ukk_if_received(ifname) - drv0, ukk_if_stacked_frames(ifname) - stk0,
		    want_stk));
	return (0);
}

static const char *
top_name(int top)
{
	switch (top) {
	case UKK_TOP_DRIVER: return ("the driver's");
	case UKK_TOP_FOREIGN: return ("the other module's");
	case UKK_TOP_MODULE: return ("zbpf's");
	case UKK_TOP_MIXED: return ("mixed");
	default: return ("no interface");
	}
}

static int
expect_top(const char *ifname, int want, const char *when)
{
	int top = ukk_if_top(ifname);

	if (top != want)
		return (zk_fail("%s: %s's if_input/if_transmit are %s, want %s", when, ifname,
		    top_name(top), top_name(want)));
	return (0);
}

/* kldunload must be refused with EBUSY (the module stays loaded). */
static int
unload_refused(const char *when)
{
	int err = ukld_kit_kldunload();

	if (err != EBUSY)
		return (zk_fail("kldunload %s: %s, want EBUSY", when,
		    err == 0 ? "unloaded" : strerror(err)));
	return (0);
}

/* ---- hooks-stacked: under another module's wrappers ---- */

int
ukld_check_hooks_stacked(void)
{
	const char *ifn = "ukstk0";
	int fd, e, rc = -1;

	if (ukk_if_create(ifn) != 0)
		return (zk_fail("ukk_if_create %s", ifn));
	fd = open_on(ifn);
	if (fd < 0)
		return (-1);
	if (expect_top(ifn, UKK_TOP_MODULE, "BIOCSETIF") != 0)
		goto out;
	e = ukk_if_stack(ifn, 1);
	if (e != 0) {
		zk_fail("ukk_if_stack on: error %d", e);
		goto out;
	}
	if (frame_through(ifn, fd, 1, 1, 1, "stacked, a reader") != 0)
		goto out;
	/* The last close: zbpf's functions are under the other module's,
	 * so it must leave them (a pass-through) and refuse the unload. */
	zk_close(fd);
	fd = -1;
	if (expect_top(ifn, UKK_TOP_FOREIGN, "the last close while stacked") != 0 ||
	    frame_through(ifn, -1, 2, 0, 1, "stacked, no reader") != 0 ||
	    unload_refused("with zbpf's hook under another module's") != 0 ||
	    expect_top(ifn, UKK_TOP_FOREIGN, "the refused unload") != 0 ||
	    frame_through(ifn, -1, 3, 0, 1, "after the refused unload") != 0)
		goto out;
	/* Attaching again reuses the hook that stayed: no second layer. */
	fd = open_on(ifn);
	if (fd < 0)
		goto out;
	if (expect_top(ifn, UKK_TOP_FOREIGN, "BIOCSETIF again while stacked") != 0 ||
	    frame_through(ifn, fd, 4, 1, 1, "attached again while stacked") != 0 ||
	    frame_through(ifn, fd, 5, 1, 1, "attached again, a second frame") != 0)
		goto out;
	zk_close(fd);
	fd = -1;
	/* The other module leaves: zbpf's idle wrapper is on top again. */
	e = ukk_if_stack(ifn, 0);
	if (e != 0) {
		zk_fail("ukk_if_stack off: error %d", e);
		goto out;
	}
	if (expect_top(ifn, UKK_TOP_MODULE, "the other module gone") != 0 ||
	    frame_through(ifn, -1, 6, 0, 0, "the other module gone") != 0)
		goto out;
	zk_note("under another module's wrapper the last close left zbpf's hook as a "
	    "pass-through (frames reached the driver, counted once above), kldunload was "
	    "refused with EBUSY; BIOCSETIF again captured through it with no second layer; "
	    "the other module's leaving put zbpf's idle wrapper back on top (kld-unload "
	    "settles it)");
	rc = 0;
out:
	if (fd >= 0)
		zk_close(fd);
	if (ukk_if_top(ifn) == UKK_TOP_FOREIGN)
		(void)ukk_if_stack(ifn, 0);
	return (rc);
}

/* ---- hooks-needsepoch: a driver calling if_input outside the epoch ---- */

int
ukld_check_hooks_needsepoch(void)
{
	const char *ifn = "ukepo0";
	int fd, e;

	e = ukk_if_create_ex(ifn, "ukldeth", BSD_IFT_ETHER, BSD_IFF_NEEDSEPOCH);
	if (e != 0)
		return (zk_fail("ukk_if_create_ex %s IFF_NEEDSEPOCH: error %d", ifn, e));
	fd = open_on(ifn);
	if (fd < 0) {
		(void)ukk_if_destroy(ifn);
		return (-1);
	}
	e = frame_through(ifn, fd, 11, 1, 0, "IFF_NEEDSEPOCH, a reader");
	zk_close(fd);
	/* No wait proves that nobody is entering the wrapper: it stays. */
	if (e != 0 || expect_top(ifn, UKK_TOP_MODULE, "the last close") != 0 ||
	    frame_through(ifn, -1, 12, 0, 0, "the hook kept, no reader") != 0 ||
	    unload_refused("with a kept hook on an IFF_NEEDSEPOCH interface") != 0 ||
	    frame_through(ifn, -1, 13, 0, 0, "after the refused unload") != 0) {
		(void)ukk_if_destroy(ifn);
		return (-1);
	}
	/* The interface leaves: the hook goes with it. */
	e = ukk_if_destroy(ifn);
	if (e != 0)
		return (zk_fail("ukk_if_destroy %s: error %d", ifn, e));
	if (expect_top(ifn, UKK_TOP_DRIVER, "the departure") != 0)
		return (-1);
	zk_note("IFF_NEEDSEPOCH: the last close kept zbpf's hook (frames still reached the "
	    "driver), kldunload was refused with EBUSY; the departure gave the driver's "
	    "functions back");
	return (0);
}

/* ---- hooks-promisc-departure: no ifpromisc on a dying interface ---- */

int
ukld_check_hooks_promisc_departure(void)
{
	const char *ifn = "ukpro0";
	unsigned int on = 1;
	uint8_t buf[HBLEN];
	int fd, e, v0, pc = -1;
	ssize_t n;

	if (ukk_if_create(ifn) != 0)
		return (zk_fail("ukk_if_create %s", ifn));
	fd = open_on(ifn);
	if (fd < 0) {
		(void)ukk_if_destroy(ifn);
		return (-1);
	}
	if (zk_ioctl(fd, BIOCPROMISC, &on) != 0 || (pc = ukk_if_pcount(ifn)) != 1) {
		zk_fail("BIOCPROMISC: %s, if_pcount %d, want 1", strerror(errno),
		    ukk_if_pcount(ifn));
		zk_close(fd);
		(void)ukk_if_destroy(ifn);
		return (-1);
	}
	v0 = uh_violation_count();
	e = ukk_if_destroy(ifn);
	zk_setnonblock(fd, 1);
	n = zk_read(fd, buf, sizeof(buf));
	zk_setnonblock(fd, 0);
	e = e != 0 ? zk_fail("ukk_if_destroy: error %d", e) : 0;
	if (e == 0 && (n >= 0 || errno != ENXIO))
		e = zk_fail("read after the departure: %zd (%s), want ENXIO", n,
		    n < 0 ? strerror(errno) : "no error");
	zk_close(fd);
	if (e == 0 && uh_violation_count() != v0)
		e = zk_fail("%d kernel rules broken by the departure (VIOLATION lines above)",
		    uh_violation_count() - v0);
	if (e != 0)
		return (-1);
	zk_note("a promiscuous reader (if_pcount %d) on a departing interface (IFF_DYING "
	    "before the event) got ENXIO; ifpromisc was not called on it", pc);
	return (0);
}

/* ---- hooks-many: interfaces come and go ---- */

#define HOOKS_MANY	300

int
ukld_check_hooks_many(void)
{
	struct hframe f;
	char name[16];
	long bytes0, bytes1;
	int fd, i, got, e, destroyed = 0;
	ssize_t n;
	uint8_t buf[HBLEN];

	/* The first hook on a low index allocates its table page, which
	 * stays until the unload: have it before counting. */
	fd = open_on(zk.rx_if);
	if (fd < 0)
		return (-1);
	zk_close(fd);
	bytes0 = ukk_malloc_type_bytes("zbpf");
	for (i = 1; i <= HOOKS_MANY; i++) {
		snprintf(name, sizeof(name), "ukmany%d", i);
		e = ukk_if_create(name);
		if (e != 0)
			return (zk_fail("ukk_if_create %s: error %d", name, e));
		fd = open_on(name);
		if (fd < 0) {
			(void)ukk_if_destroy(name);
			return (zk_fail("interface #%d", i));
		}
		mk_frame(&f, (unsigned)i);
		got = inject(name, &f) == 0 ? records_of(fd, &f, name) : -1;
		if (got != 1) {
			zk_close(fd);
			(void)ukk_if_destroy(name);
			return (zk_fail("interface #%d (%s): %d records, want 1", i, name, got));
		}
		if (i % 2 == 0) {
			/* Destroyed under the open descriptor. */
			e = ukk_if_destroy(name);
			zk_setnonblock(fd, 1);
			n = zk_read(fd, buf, sizeof(buf));
			zk_setnonblock(fd, 0);
			if (e != 0 || n >= 0 || errno != ENXIO) {
				zk_close(fd);
				return (zk_fail("%s destroyed under a reader: error %d, then read "
				    "%zd (%s), want ENXIO", name, e, n,
				    n < 0 ? strerror(errno) : "no error"));
			}
			zk_close(fd);
			destroyed++;
		} else {
			zk_close(fd);
			e = ukk_if_destroy(name);
			if (e != 0)
				return (zk_fail("ukk_if_destroy %s: error %d", name, e));
		}
		if (expect_top(name, UKK_TOP_DRIVER, "gone") != 0)
			return (-1);
	}
	bytes1 = ukk_malloc_type_bytes("zbpf");
	if (bytes1 != bytes0)
		return (zk_fail("malloc type zbpf: %ld bytes before %d interfaces came and went, "
		    "%ld after", bytes0, HOOKS_MANY, bytes1));
	zk_note("%d interfaces (%d destroyed under their reader, ENXIO; %d after the close) each "
	    "captured its frame, #%d too; each left with the driver's functions; malloc type "
	    "zbpf %ld bytes before and after", HOOKS_MANY, destroyed, HOOKS_MANY - destroyed,
	    HOOKS_MANY, bytes0);
	return (0);
}

/* ---- hooks-lagg-bridge: interfaces that are not tapped here ---- */

int
ukld_check_hooks_lagg_bridge(void)
{
	static const struct {
		const char *name, *dname;
		int type, ok;
	} ifs[] = {
		{ "uklagg0", "lagg", BSD_IFT_IEEE8023ADLAG, 0 },
		{ "ukbridge0", "bridge", BSD_IFT_BRIDGE, 0 },
		{ "uklport0", "ukldeth", BSD_IFT_IEEE8023ADLAG, 1 },	/* a lagg port */
	};
	zk_ifreq ifr;
	unsigned int i;
	int fd, r, rc = 0;

	for (i = 0; i < sizeof(ifs) / sizeof(ifs[0]); i++) {
		r = ukk_if_create_ex(ifs[i].name, ifs[i].dname, ifs[i].type, 0);
		if (r != 0)
			return (zk_fail("ukk_if_create_ex %s: error %d", ifs[i].name, r));
	}
	for (i = 0; i < sizeof(ifs) / sizeof(ifs[0]) && rc == 0; i++) {
		fd = zk_dev_open();
		if (fd < 0) {
			rc = -1;
			break;
		}
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ZK_IFR_NAME(ifr), sizeof(ZK_IFR_NAME(ifr)), "%s", ifs[i].name);
		r = zk_ioctl(fd, BIOCSETIF, &ifr);
		if (ifs[i].ok ? r != 0 : r == 0 || errno != ENXIO)
			rc = zk_fail("BIOCSETIF %s (driver %s, type %#x): %s, want %s", ifs[i].name,
			    ifs[i].dname, ifs[i].type, r == 0 ? "attached" : strerror(errno),
			    ifs[i].ok ? "attached" : "ENXIO");
		zk_close(fd);
	}
	/* The port captures like any Ethernet. */
	if (rc == 0) {
		fd = open_on(ifs[2].name);
		if (fd < 0 || frame_through(ifs[2].name, fd, 21, 1, 0, "a lagg port") != 0)
			rc = -1;
		if (fd >= 0)
			zk_close(fd);
	}
	for (i = 0; i < sizeof(ifs) / sizeof(ifs[0]); i++)
		(void)ukk_if_destroy(ifs[i].name);
	if (rc == 0)
		zk_note("lagg (type %#x) and bridge (type %#x): BIOCSETIF ENXIO; a lagg port "
		    "(type %#x, driver ukldeth) attached and captured", BSD_IFT_IEEE8023ADLAG,
		    BSD_IFT_BRIDGE, BSD_IFT_IEEE8023ADLAG);
	return (rc);
}

/* ---- stats-write-size: only a whole record may be written ---- */

int
ukld_check_stats_write_size(void)
{
	static const uk_size_t bad[] = { 0, 1, XBPF_D_SIZE - 1, XBPF_D_SIZE + 1,
	    2 * XBPF_D_SIZE, (uk_size_t)1 << 30 };
	static uint8_t zero[2 * XBPF_D_SIZE];
	struct bpf_stat st;
	struct hframe f;
	char name[64];
	unsigned int i, frames = 3;
	int fd, e, rc = -1;

	snprintf(name, sizeof(name), "%s.stats", zk.sysctl);
	fd = open_on(zk.rx_if);
	if (fd < 0)
		return (-1);
	for (i = 0; i < frames; i++) {
		mk_frame(&f, 30 + i);
		if (inject(zk.rx_if, &f) != 0)
			goto out;
	}
	/* Zeros of the wrong sizes: refused, the counters untouched (the
	 * huge one's buffer is small: nothing may read past it). */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = ukk_sysctl(name, 0, NULL, (uk_u64)(uintptr_t)zero, bad[i]);
		if (e != EINVAL) {
			zk_fail("%s write of %zu bytes (a record is %d): error %d, want EINVAL",
			    name, (size_t)bad[i], XBPF_D_SIZE, e);
			goto out;
		}
	}
	if (zk_ioctl(fd, BIOCGSTATS, &st) != 0 || st.bs_recv != frames) {
		zk_fail("after the refused writes: received %u, want %u", st.bs_recv, frames);
		goto out;
	}
	/* A whole record of zeros is taken: the counters go to zero. */
	e = ukk_sysctl(name, 0, NULL, (uk_u64)(uintptr_t)zero, XBPF_D_SIZE);
	if (e != 0 || zk_ioctl(fd, BIOCGSTATS, &st) != 0 || st.bs_recv != 0) {
		zk_fail("%s write of one record of zeros: error %d, then received %u", name, e,
		    st.bs_recv);
		goto out;
	}
	zk_note("%s writes of 0, 1, %d, %d, %d and %zu bytes (a %zu-byte buffer): EINVAL, "
	    "counters kept (%u received); one %d-byte record of zeros zeroed them", name,
	    XBPF_D_SIZE - 1, XBPF_D_SIZE + 1, 2 * XBPF_D_SIZE, (size_t)1 << 30, sizeof(zero),
	    frames, XBPF_D_SIZE);
	rc = 0;
out:
	zk_close(fd);
	return (rc);
}

/* ---- load-dev-once: the device is made once, under its own name ---- */

int
ukld_check_load_dev_once(void)
{
	const char *dev = strrchr(zk.device, '/') + 1;
	const char *want = ukld_kit_side_by_side ? "zbpf" : "bpf";
	/* Side by side, the built-in bpf made /dev/bpf before the load. */
	int builtin = ukld_kit_side_by_side, mine = ukk_dev_created(want);
	int other = ukk_dev_created(ukld_kit_side_by_side ? "bpf" : "zbpf");
	int total = ukk_dev_created(NULL);

	if (strcmp(dev, want) != 0 || mine != 1 || other != builtin || total != 1 + builtin)
		return (zk_fail("device %s (want /dev/%s): make_dev_s made %s %d times (want 1), "
		    "%s %d times (want %d), %d devices in all (want %d)", zk.device, want, want,
		    mine, ukld_kit_side_by_side ? "bpf" : "zbpf", other, builtin, total,
		    1 + builtin));
	zk_note("make_dev_s made /dev/%s once%s, and no other device", want,
	    builtin ? " (besides the built-in /dev/bpf)" : "");
	return (0);
}

/*
 * ukld_bench.c: what the real zbpf.ko costs per packet delivered, loaded by
 * the userspace kld harness (not FreeBSD: the module's own bytes, its C
 * shims and its Rust engine, over the harness's emulation of the kernel).
 *
 * One interface, D descriptors (1, 8) attached with an accept-all filter
 * (ret #65535), in BUFFER mode (read(2) drains) and ZBUF mode (shared
 * buffers, acknowledged), frames of 64 and 1500 bytes. Each burst is
 * ukk_if_input_burst: a list of 16 one-mbuf packets, built once, handed
 * again and again to the interface's if_input (an m_nextpkt list of 16,
 * as iflib hands up its rx budget), which the module has wrapped; its tap
 * runs, then the emulated driver's own if_input counts the list and leaves
 * it alone. Only the hand-over is timed: not the list's making, not the
 * drain after the burst. A burst is one and a half buffers' worth, so it
 * rotates once and drops nothing; every descriptor must see every packet
 * (records counted, BIOCGSTATS: all received, none dropped).
 *
 * The same bursts with no descriptor attached time what the emulation adds
 * by itself (its network epoch, the driver's if_input), which the
 * simulator does not have.
 *
 * Usage: ukld_bench [--ko PATH] [--config MODE,DESCRIPTORS,SIZE]
 * (--config: that configuration only, and the driver's line of its size)
 * Prints one tab-separated line per configuration, as zbpf-bench --deliver
 * does for the simulator (tests/ukld/bench.sh puts the two side by side):
 *   real MODE DESCRIPTORS SIZE BURST NS
 * and, per frame size, the driver's own cost with no descriptor:
 *   driver SIZE NS
 * Exit status 1 if a packet was missed or dropped.
 */
#include "zk.h"

#include <stdlib.h>

#include "loader.h"

/* Bytes of each capture buffer; maxbufsize is raised to it. The same as
 * the simulator's (src/bin/zbpf-bench/deliver.rs). */
#define	BENCH_BUFSIZE	(1024 * 1024)
#define	BENCH_ZBUF_HEADER 32
/* Timed bursts per configuration (the median is kept), after a warm-up. */
#define	BENCH_REPS	21
#define	BENCH_WARMUP	3
#define	BENCH_MAXDESC	8
/* Packets per if_input call (an m_nextpkt list), as iflib hands them up:
 * up to its rx budget, 16 by default. */
#define	BENCH_LIST	16

struct bench_desc {
	int fd;
	struct zk_zbuf z;	/* ZBUF */
	uint8_t *buf;		/* BUFFER: the read buffer */
	unsigned long seen;	/* records drained from the last burst */
};

static const char *ko_path = "target/ko/zbpf.ko";
static const char *only;	/* --config */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return ((x > y) - (x < y));
}

/* Packets per burst: one and a half buffers' worth of records. */
static long
bench_burst(size_t size)
{
	size_t hdr = offsetof(struct bpf_hdr, bh_hdrlen) + sizeof(unsigned short);
	size_t rec = BPF_WORDALIGN(BPF_WORDALIGN(14 + hdr) - 14 + size);

	return ((long)((BENCH_BUFSIZE - BENCH_ZBUF_HEADER) / rec * 3 / 2));
}

/* The median of BENCH_REPS timed bursts; drain(arg) runs untimed after
 * each (NULL: nothing to drain). -1 on failure. */
static double
bench_time(const uint8_t *frame, size_t len, long n, int (*drain)(void *),
    void *arg)
{
	double samples[BENCH_REPS];
	uk_u64 ns;
	int rep, err;

	for (rep = 0; rep < BENCH_WARMUP + BENCH_REPS; rep++) {
		err = ukk_if_input_burst(zk.rx_if, frame, len, n, BENCH_LIST, &ns);
		if (err != 0)
			return (zk_fail("ukk_if_input_burst: FreeBSD errno %d", err));
		if (rep >= BENCH_WARMUP)
			samples[rep - BENCH_WARMUP] = (double)ns / (double)n;
		if (drain != NULL && drain(arg) != 0)
			return (-1);
	}
	qsort(samples, BENCH_REPS, sizeof(samples[0]), cmp_double);
	return (samples[BENCH_REPS / 2]);
}

static int
count_record(void *arg, const uint8_t *frame, uint32_t caplen, uint32_t datalen)
{
	(void)frame;
	(void)caplen;
	(void)datalen;
	((struct bench_desc *)arg)->seen++;
	return (0);
}

struct bench_run {
	struct bench_desc d[BENCH_MAXDESC];
	int n, zbuf;
	long burst;
};

/* Every descriptor reads all it has; each must have the whole burst. */
static int
drain_all(void *arg)
{
	struct bench_run *r = arg;
	const uint8_t *data;
	size_t len;
	ssize_t got;
	int i, k;

	for (i = 0; i < r->n; i++) {
		struct bench_desc *d = &r->d[i];

		d->seen = 0;
		for (;;) {
			if (r->zbuf) {
				k = zk_zbuf_next(&d->z, -1, &data, &len);
				if (k < 0)
					return (-1);
				if (k == 0)
					break;
			} else {
				got = zk_read(d->fd, d->buf, BENCH_BUFSIZE);
				if (got < 0 && errno == EAGAIN)
					break;
				if (got < 0)
					return (zk_fail("read: %s", strerror(errno)));
				if (got == 0)
					break;
				data = d->buf;
				len = (size_t)got;
			}
			if (zk_walk(data, len, count_record, d) != 0)
				return (-1);
		}
		if (d->seen != (unsigned long)r->burst)
			return (zk_fail("descriptor %d drained %lu records of a %ld-packet "
			    "burst", i, d->seen, r->burst));
	}
	return (0);
}

static int
open_desc(struct bench_desc *d, int zbuf)
{
	struct bpf_insn accept = BPF_STMT(BPF_RET | BPF_K, 65535);
	struct bpf_program prog = { 1, &accept };
	unsigned int blen = BENCH_BUFSIZE;

	memset(d, 0, sizeof(*d));
	d->fd = zk_dev_open();
	if (d->fd < 0)
		return (-1);
	if (zbuf) {
		if (zk_zbuf_setup(&d->z, d->fd, BENCH_BUFSIZE, 1) != 0)
			return (-1);
		if (d->z.len != BENCH_BUFSIZE)
			return (zk_fail("ZBUF buffers of %zu bytes, not %d", d->z.len,
			    BENCH_BUFSIZE));
	} else {
		if (zk_ioctl(d->fd, BIOCSBLEN, &blen) != 0 || blen != BENCH_BUFSIZE)
			return (zk_fail("BIOCSBLEN %d: %u, %s", BENCH_BUFSIZE, blen,
			    strerror(errno)));
		d->buf = malloc(BENCH_BUFSIZE);
		if (d->buf == NULL || zk_setnonblock(d->fd, 1) != 0)
			return (zk_fail("read buffer or O_NONBLOCK: %s", strerror(errno)));
	}
	if (zk_ioctl(d->fd, BIOCSETF, &prog) != 0)
		return (zk_fail("BIOCSETF: %s", strerror(errno)));
	return (zk_attach(d->fd, zk.rx_if));
}

static void
close_run(struct bench_run *r)
{
	int i;

	for (i = 0; i < r->n; i++) {
		if (r->d[i].fd >= 0)
			zk_close(r->d[i].fd);
		if (r->zbuf)
			zk_zbuf_free(&r->d[i].z);
		free(r->d[i].buf);
	}
}

/* One configuration: its median ns/packet, and *dropped the packets any
 * descriptor did not receive or dropped (BIOCGSTATS). -1 on failure. */
static double
bench_config(int zbuf, int ndesc, const uint8_t *frame, size_t len,
    long *dropped)
{
	struct bench_run r;
	struct bpf_stat st;
	unsigned long sent;
	double ns;
	int i;

	memset(&r, 0, sizeof(r));
	r.zbuf = zbuf;
	r.burst = bench_burst(len);
	*dropped = 0;
	for (i = 0; i < ndesc; i++) {
		r.n = i + 1;
		if (open_desc(&r.d[i], zbuf) != 0) {
			close_run(&r);
			return (-1);
		}
	}
	ns = bench_time(frame, len, r.burst, drain_all, &r);
	sent = (unsigned long)(BENCH_WARMUP + BENCH_REPS) * (unsigned long)r.burst;
	for (i = 0; ns >= 0 && i < ndesc; i++) {
		if (zk_ioctl(r.d[i].fd, BIOCGSTATS, &st) != 0) {
			ns = zk_fail("BIOCGSTATS: %s", strerror(errno));
			break;
		}
		if (st.bs_recv != sent || st.bs_drop != 0) {
			zk_note("descriptor %d: received %u of %lu, dropped %u", i,
			    st.bs_recv, sent, st.bs_drop);
			*dropped += (long)(sent - st.bs_recv) + st.bs_drop;
		}
	}
	close_run(&r);
	return (ns);
}

/* Whether --config names a configuration of frames of `size` bytes. */
static int
bench_size_wanted(int size)
{
	const char *comma = strrchr(only, ',');

	return (comma != NULL && atoi(comma + 1) == size);
}

int
main(int argc, char **argv)
{
	static const int sizes[2] = { 64, 1500 }, descs[2] = { 1, 8 };
	uint8_t frames[2][1514];
	char msg[256];
	struct ukld_module *mod;
	long dropped;
	double ns;
	char config[32];
	int i, s, m, k, err, matched = 0, status = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ko") == 0 && i + 1 < argc)
			ko_path = argv[++i];
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: ukld_bench [--ko PATH] "
			    "[--config MODE,DESCRIPTORS,SIZE]\n");
			return (2);
		}
	}
	zk_check_name = "ukld_bench";
	uh_boot();
	uh_cpu_enter();
	err = ukld_kldload(ko_path, &mod, msg, sizeof(msg));
	if (err != 0) {
		fprintf(stderr, "ukld_bench: kldload %s: %s (%s)\n", ko_path, msg,
		    strerror(err));
		return (1);
	}
	{
		void *base;
		size_t size;

		/* For a profiler's symbol map (the module is anonymous memory). */
		ukld_module_range(mod, &base, &size);
		fprintf(stderr, "ukld_bench: pid %d, module %s at %p (%zu bytes)\n",
		    (int)getpid(), ko_path, base, size);
	}
	if (zk_env_init(ukk_dev_exists("zbpf") ? "/dev/zbpf" : "/dev/bpf", "epair0a",
	    "epair0b", "epair9a", "epair9b") != 0 ||
	    zk_sysctl_set("maxbufsize", BENCH_BUFSIZE) != 0) {
		fprintf(stderr, "ukld_bench: set-up failed\n");
		return (1);
	}
	for (s = 0; s < 2; s++) {
		if (zk_build_frame(frames[s], sizeof(frames[s]), (uint32_t)s, ZK_PORT_BASE,
		    (size_t)sizes[s] - 42) != (size_t)sizes[s])
			return (zk_fail("building a %d-byte frame", sizes[s]) != 0);
		if (only != NULL && !bench_size_wanted(sizes[s]))
			continue;
		/* No descriptor: the driver's own part of the hand-over. */
		ns = bench_time(frames[s], (size_t)sizes[s], bench_burst((size_t)sizes[s]),
		    NULL, NULL);
		if (ns < 0)
			return (1);
		printf("driver\t%d\t%.1f\n", sizes[s], ns);
	}
	for (m = 0; m < 2; m++) {
		for (k = 0; k < 2; k++) {
			for (s = 0; s < 2; s++) {
				snprintf(config, sizeof(config), "%s,%d,%d",
				    m ? "ZBUF" : "BUFFER", descs[k], sizes[s]);
				if (only != NULL && strcmp(only, config) != 0)
					continue;
				matched = 1;
				ns = bench_config(m, descs[k], frames[s], (size_t)sizes[s],
				    &dropped);
				if (ns < 0)
					return (1);
				if (dropped != 0)
					status = 1;
				printf("real\t%s\t%d\t%d\t%ld\t%.1f%s\n", m ? "ZBUF" : "BUFFER",
				    descs[k], sizes[s], bench_burst((size_t)sizes[s]), ns,
				    dropped != 0 ? "\tlost" : "");
			}
		}
	}
	if (only != NULL && !matched) {
		fprintf(stderr, "ukld_bench: --config %s: no such configuration\n",
		    only);
		status = 1;
	}
	zk_env_fini();
	err = ukld_kldunload(mod);
	if (err != 0) {
		fprintf(stderr, "ukld_bench: kldunload: %s\n", strerror(err));
		status = 1;
	}
	if (uh_violation_count() != 0) {
		fprintf(stderr, "ukld_bench: %d kernel rules broken (VIOLATION lines)\n",
		    uh_violation_count());
		status = 1;
	}
	return (status);
}

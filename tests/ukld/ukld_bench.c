/*
 * ukld_bench.c: what the real zbpf.ko costs per packet delivered, loaded by
 * the userspace kld harness (not FreeBSD: the module's own bytes, its C
 * shims and its Rust engine, over the harness's emulation of the kernel).
 *
 * One interface, D descriptors (1, 8) attached with an accept-all filter
 * (ret #65535), in BUFFER mode (read(2) drains) and ZBUF mode (shared
 * buffers, acknowledged), frames of 64 and 1500 bytes. Each burst is
 * ukk_if_input_burst: a fresh one-mbuf packet per frame, handed to the
 * interface's if_input in m_nextpkt lists of 16 (as iflib hands up its rx
 * budget), which the module has wrapped; its tap runs, then
 * the emulated driver's own if_input frees the mbuf. Only the burst is
 * timed; the drain after it is not. A burst is one and a half buffers'
 * worth, so it rotates once and drops nothing; every descriptor must see
 * every packet (records counted, BIOCGSTATS: all received, none dropped).
 *
 * The same bursts with no descriptor attached time what the emulation adds
 * by itself (the mbuf built and copied, the driver's if_input freeing it),
 * which a real driver pays too but the simulator does not.
 *
 * Usage: ukld_bench [--ko PATH] [--sim FILE] [--runs N]
 *   --sim FILE   the simulator's figures for the same work (zbpf-bench
 *                --deliver, one or more runs: the best of each is kept):
 *                printed beside the module's, with the ratio
 *   --runs N     measure every configuration N times, keep the best
 *                (default 1)
 * Prints a Markdown table. Exit status 1 if a packet was missed or
 * dropped, or the simulator's bursts are not the same as these.
 */
#include "zk.h"

#include <stdlib.h>
#include <time.h>

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

struct bench_sim {
	char mode[8];
	int descriptors, size;
	long burst;
	double ns;
};

static const char *ko_path = "target/ko/zbpf.ko";
static struct bench_sim sims[16];
static int nsims;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

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
	uint64_t t0, t1;
	int rep, err;

	for (rep = 0; rep < BENCH_WARMUP + BENCH_REPS; rep++) {
		t0 = now_ns();
		err = ukk_if_input_burst(zk.rx_if, frame, len, n, BENCH_LIST);
		t1 = now_ns();
		if (err != 0)
			return (zk_fail("ukk_if_input_burst: FreeBSD errno %d", err));
		if (rep >= BENCH_WARMUP)
			samples[rep - BENCH_WARMUP] = (double)(t1 - t0) / (double)n;
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

static const struct bench_sim *
find_sim(const char *mode, int ndesc, int size)
{
	int i;

	for (i = 0; i < nsims; i++)
		if (strcmp(sims[i].mode, mode) == 0 && sims[i].descriptors == ndesc &&
		    sims[i].size == size)
			return (&sims[i]);
	return (NULL);
}

static int
read_sims(const char *path)
{
	char line[256];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return (zk_fail("%s: %s", path, strerror(errno)));
	while (nsims < (int)(sizeof(sims) / sizeof(sims[0])) &&
	    fgets(line, sizeof(line), f) != NULL) {
		struct bench_sim *s = &sims[nsims];

		const struct bench_sim *seen;

		if (sscanf(line, "sim %7s %d %d %ld %lf", s->mode, &s->descriptors,
		    &s->size, &s->burst, &s->ns) != 5)
			continue;
		/* Several runs of the simulator: the best of each. */
		seen = find_sim(s->mode, s->descriptors, s->size);
		if (seen == NULL)
			nsims++;
		else if (s->ns < seen->ns)
			((struct bench_sim *)seen)->ns = s->ns;
	}
	fclose(f);
	return (nsims > 0 ? 0 : zk_fail("%s: no simulator figures", path));
}

int
main(int argc, char **argv)
{
	static const int sizes[2] = { 64, 1500 }, descs[2] = { 1, 8 };
	const char *sim_path = NULL;
	uint8_t frames[2][1514];
	double base[2], best[8], ns;
	long lost[8] = { 0 }, dropped;
	int runs = 1, run;
	char msg[256];
	struct ukld_module *mod;
	int i, s, m, k, err, status = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ko") == 0 && i + 1 < argc)
			ko_path = argv[++i];
		else if (strcmp(argv[i], "--sim") == 0 && i + 1 < argc)
			sim_path = argv[++i];
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc &&
		    (runs = atoi(argv[i + 1])) > 0)
			i++;
		else {
			fprintf(stderr, "usage: ukld_bench [--ko PATH] [--sim FILE] "
			    "[--runs N]\n");
			return (2);
		}
	}
	zk_check_name = "ukld_bench";
	if (sim_path != NULL && read_sims(sim_path) != 0)
		return (1);
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
	}
	/* Every configuration `runs` times, the runs one after the other so
	 * that a busy spell of the machine spoils one run, not all: the best
	 * median of each is kept. */
	for (i = 0; i < 2 * 2 * 2; i++)
		best[i] = -1;
	base[0] = base[1] = -1;
	for (run = 0; run < runs; run++) {
		for (s = 0; s < 2; s++) {
			/* No descriptor: the emulation's mbuf and driver alone. */
			ns = bench_time(frames[s], (size_t)sizes[s],
			    bench_burst((size_t)sizes[s]), NULL, NULL);
			if (ns < 0)
				return (1);
			if (base[s] < 0 || ns < base[s])
				base[s] = ns;
		}
		for (i = 0; i < 2 * 2 * 2; i++) {
			m = i / 4, k = i / 2 % 2, s = i % 2;
			ns = bench_config(m, descs[k], frames[s], (size_t)sizes[s], &dropped);
			if (ns < 0)
				return (1);
			lost[i] += dropped;
			if (best[i] < 0 || ns < best[i])
				best[i] = ns;
		}
	}

	printf("| mode | descriptors | frame | packets per burst | real module ns/packet | "
	    "of which mbuf + driver (no descriptor) | simulator ns/packet | real / simulator | "
	    "real without mbuf + driver / simulator |\n");
	printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (i = 0; i < 2 * 2 * 2; i++) {
		const char *mode;
		const struct bench_sim *sim;
		long burst;
		char simcol[32] = "–", ratio[32] = "–", net[32] = "–";

		m = i / 4, k = i / 2 % 2, s = i % 2;
		mode = m ? "ZBUF" : "BUFFER";
		sim = find_sim(mode, descs[k], sizes[s]);
		burst = bench_burst((size_t)sizes[s]);
		if (sim != NULL && sim->burst != burst) {
			zk_fail("%s %d x %d B: the simulator's bursts are %ld packets, "
			    "these %ld", mode, descs[k], sizes[s], sim->burst, burst);
			status = 1;
		} else if (sim != NULL) {
			snprintf(simcol, sizeof(simcol), "%.1f", sim->ns);
			snprintf(ratio, sizeof(ratio), "%.2f×", best[i] / sim->ns);
			snprintf(net, sizeof(net), "%.2f×", (best[i] - base[s]) / sim->ns);
		}
		if (lost[i] != 0)
			status = 1;
		printf("| %s | %d | %d B | %ld | %.1f%s | %.1f | %s | %s | %s |\n", mode,
		    descs[k], sizes[s], burst, best[i],
		    lost[i] != 0 ? " (packets lost!)" : "", base[s], simcol, ratio, net);
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

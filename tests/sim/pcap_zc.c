/*
 * pcap_zc.c: libpcap 1.10.3 with zbpf's patch (scripts/libpcap/zbpf.patch),
 * its own pcap-bpf.c and core compiled for Linux, capturing through the
 * public pcap API from the zbpf simulator's device: the zero-copy consumer
 * code that ships in the patch, run against the same engine as the module.
 * Prints one PASS/FAIL line per check and "N passed, N failed".
 *
 * Usage: pcap_zc [CHECK...]   (default: all of them)
 */
#include "zk.h"

#include <pcap.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "zsim-glue.h"

#define PORT	(ZK_PORT_BASE + 20)

/* ---- Helpers. ---- */

struct rx {
	uint32_t expect, got;
	uint32_t stale_below, stale;	/* frames below: seen before, skipped */
	uint16_t port;
	size_t fixed;
	int bad;
	volatile uint32_t done;		/* frames handed to the callback */
};

static void
on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct rx *r = (struct rx *)(void *)user;
	long seq;

	if (r->bad)
		return;
	seq = zk_verify(bytes, h->caplen, h->len, r->port, r->fixed);
	/* Before the first new frame, frames already seen may come again. */
	if (seq >= 0 && (uint32_t)seq < r->stale_below && r->expect == r->stale_below) {
		r->stale++;
		return;
	}
	if (seq < 0 || (uint32_t)seq != r->expect) {
		if (seq >= 0)
			zk_note("frame %ld where %u was due", seq, r->expect);
		r->bad = 1;
		return;
	}
	r->expect++;
	r->got++;
	__atomic_store_n(&r->done, r->got, __ATOMIC_RELEASE);
}

static void
unset_env(void)
{
	unsetenv("BPF_ZEROCOPY");
	unsetenv("PCAP_BPF_DEVICE");
	unsetenv("ZSIM_NO_ZBPF");
}

/* pcap_create + options + pcap_activate on the capture interface; NULL on
 * failure, with errbuf (the activation's message) filled. */
static pcap_t *
open_capture(int timeout_ms, int bufsize, char *errbuf)
{
	pcap_t *p = pcap_create(zk.rx_if, errbuf);
	int r;

	if (p == NULL)
		return (NULL);
	pcap_set_snaplen(p, 65535);
	pcap_set_timeout(p, timeout_ms);
	if (bufsize)
		pcap_set_buffer_size(p, bufsize);
	r = pcap_activate(p);
	if (r < 0) {
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(p));
		pcap_close(p);
		return (NULL);
	}
	return (p);
}

static int
set_filter(pcap_t *p, uint16_t port)
{
	struct bpf_program prog;
	char expr[64];

	snprintf(expr, sizeof(expr), "udp dst port %u", port);
	if (pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) != 0 ||
	    pcap_setfilter(p, &prog) != 0)
		return (zk_fail("filter: %s", pcap_geterr(p)));
	pcap_freecode(&prog);
	return (0);
}

static unsigned int
bufmode(pcap_t *p)
{
	unsigned int m = 0;

	zsim_ioctl(pcap_fileno(p), BIOCGETBUFMODE, &m);
	return (m);
}

/* A sender thread, at most `window` frames ahead of the callback. */
struct sender {
	pthread_t th;
	struct rx *r;
	uint32_t first, n, window;
	uint16_t port;
	size_t fixed;
	volatile int stop, err;
};

static void *
send_main(void *arg)
{
	struct sender *s = arg;
	uint32_t i;
	long deadline = zk_deadline_ms(30000);

	for (i = 0; i < s->n && !s->stop; i++) {
		while (s->window && s->first + i - __atomic_load_n(&s->r->done, __ATOMIC_ACQUIRE) >=
		    s->window) {
			if (s->stop || zk_now_ms() > deadline) {
				s->err = 1;
				return (NULL);
			}
			zk_sleep_ms(1);
		}
		if (zk_send(s->first + i, s->port, s->fixed) != 0) {
			s->err = 1;
			return (NULL);
		}
	}
	return (NULL);
}

static int
start_sender(struct sender *s, struct rx *r, uint32_t first, uint32_t n, uint32_t window,
    uint16_t port, size_t fixed)
{
	memset(s, 0, sizeof(*s));
	s->r = r;
	s->first = first;
	s->n = n;
	s->window = window;
	s->port = port;
	s->fixed = fixed;
	return (pthread_create(&s->th, NULL, send_main, s) == 0 ? 0 : zk_fail("pthread_create"));
}

static int
stop_sender(struct sender *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	return (s->err ? -1 : 0);
}

/* pcap_dispatch until `total` frames or the deadline. */
static int
dispatch_until(pcap_t *p, struct rx *r, uint32_t total, long ms)
{
	long t0 = zk_now_ms(), deadline = zk_deadline_ms(ms);

	while (r->got < total && !r->bad) {
		if (zk_now_ms() > deadline)
			return (zk_fail("%u of %u frames after %ld ms", r->got, total,
			    zk_now_ms() - t0));
		if (pcap_dispatch(p, -1, on_packet, (u_char *)r) < 0)
			return (zk_fail("pcap_dispatch: %s", pcap_geterr(p)));
	}
	return (r->bad ? -1 : 0);
}

/* ---- Checks. ---- */

static int
check_version(void)
{
	const char *v = pcap_lib_version();

	if (strstr(v, "with zerocopy support") == NULL || strstr(v, "zbpf") == NULL)
		return (zk_fail("pcap_lib_version: \"%s\"", v));
	zk_note("%s", v);
	return (0);
}

/* Default: /dev/zbpf, zero-copy, a stream of frames byte for byte. */
static int
check_zerocopy_default(void)
{
	char err[PCAP_ERRBUF_SIZE];
	struct pcap_stat ps;
	struct rx r = { .port = PORT };
	struct sender s;
	pcap_t *p;
	int rc = -1;

	unset_env();
	p = open_capture(20, 65536, err);
	if (p == NULL)
		return (zk_fail("pcap_activate: %s", err));
	if (strcmp(zsg_last_open, "/dev/zbpf") != 0 || bufmode(p) != BPF_BUFMODE_ZBUF) {
		zk_fail("opened %s in buffer mode %u; want /dev/zbpf and zero copy",
		    zsg_last_open, bufmode(p));
		goto out;
	}
	if (set_filter(p, PORT) != 0 || start_sender(&s, &r, 0, 2000, 40, PORT, 0) != 0)
		goto out;
	if (dispatch_until(p, &r, 2000, 30000) != 0) {
		stop_sender(&s);
		goto out;
	}
	if (stop_sender(&s) != 0 || pcap_stats(p, &ps) != 0)
		goto out;
	if (ps.ps_recv != 2000 || ps.ps_drop != 0) {
		zk_fail("pcap_stats: received %u, dropped %u, want 2000 and 0", ps.ps_recv,
		    ps.ps_drop);
		goto out;
	}
	zk_note("opened /dev/zbpf, zero-copy mode; 2000 frames byte for byte and in order; "
	    "pcap_stats received %u, dropped %u", ps.ps_recv, ps.ps_drop);
	rc = 0;
out:
	pcap_close(p);
	return (rc);
}

/*
 * Rule 6: with a completed buffer waiting, no system call. A burst fills a
 * buffer while nobody reads; pcap_dispatch then hands out its frames with
 * zsg_calls unchanged. The rest, in the partly filled buffer, takes a poll
 * timeout and BIOCROTZBUF.
 */
static int
check_no_syscall(void)
{
	char err[PCAP_ERRBUF_SIZE];
	struct rx r = { .port = PORT + 1, .fixed = 1000 };
	unsigned long before;
	pcap_t *p;
	int n, rc = -1;
	uint32_t i;

	unset_env();
	p = open_capture(50, 16384, err);	/* 4-page buffers */
	if (p == NULL)
		return (zk_fail("pcap_activate: %s", err));
	if (set_filter(p, PORT + 1) != 0)
		goto out;
	for (i = 0; i < 20; i++)	/* ~21 KB: one buffer fills, the next one not */
		if (zk_send(i, PORT + 1, 1000) != 0)
			goto out;
	before = zsg_calls;
	n = pcap_dispatch(p, -1, on_packet, (u_char *)&r);
	if (n <= 0 || zsg_calls != before) {
		zk_fail("first pcap_dispatch: %d frames, %lu system calls", n, zsg_calls - before);
		goto out;
	}
	zk_note("a full buffer waited: pcap_dispatch gave %d frames with 0 system calls", n);
	before = zsg_calls;
	if (dispatch_until(p, &r, 20, 5000) != 0)
		goto out;
	zk_note("the partly filled rest: %u frames after %lu system calls (poll, BIOCROTZBUF)",
	    20 - (uint32_t)n, zsg_calls - before);
	if (zsg_calls == before) {
		zk_fail("the partly filled buffer came without BIOCROTZBUF");
		goto out;
	}
	rc = 0;
out:
	pcap_close(p);
	return (rc);
}

/* The read timeout ends a pcap_dispatch with 0 packets (libpcap 1.10.3's
 * zero-copy loop would wait on); a non-blocking handle returns at once. */
struct wd {
	pcap_t *p;
	int ms;
	volatile int cancel, fired;
};

static void *
wd_main(void *arg)
{
	struct wd *w = arg;
	long end = zk_now_ms() + w->ms;

	while (!w->cancel && zk_now_ms() < end)
		zk_sleep_ms(5);
	if (!w->cancel) {
		w->fired = 1;
		pcap_breakloop(w->p);
	}
	return (NULL);
}

static int
check_timeout(void)
{
	char err[PCAP_ERRBUF_SIZE];
	struct rx r = { .port = PORT + 2 };
	struct wd w = { 0 };
	pthread_t th;
	pcap_t *p;
	long t0, dt;
	int n, rc = -1;

	unset_env();
	p = open_capture(200, 0, err);
	if (p == NULL)
		return (zk_fail("pcap_activate: %s", err));
	if (set_filter(p, PORT + 2) != 0)
		goto out;
	w.p = p;
	w.ms = 3000;
	pthread_create(&th, NULL, wd_main, &w);
	t0 = zk_now_ms();
	n = pcap_dispatch(p, -1, on_packet, (u_char *)&r);
	dt = zk_now_ms() - t0;
	w.cancel = 1;
	pthread_join(th, NULL);
	if (n != 0 || w.fired || dt < 150) {
		zk_fail("pcap_dispatch with a 200 ms timeout and no traffic: %d after %ld ms%s", n,
		    dt, w.fired ? " (only pcap_breakloop ended it)" : "");
		goto out;
	}
	if (pcap_setnonblock(p, 1, err) != 0) {
		zk_fail("pcap_setnonblock: %s", err);
		goto out;
	}
	t0 = zk_now_ms();
	n = pcap_dispatch(p, -1, on_packet, (u_char *)&r);
	if (n != 0 || zk_now_ms() - t0 > 1000) {
		zk_fail("non-blocking pcap_dispatch with no traffic: %d after %ld ms", n,
		    zk_now_ms() - t0);
		goto out;
	}
	if (zk_send(0, PORT + 2, 0) != 0)
		goto out;
	n = pcap_dispatch(p, -1, on_packet, (u_char *)&r);
	if (n != 1) {
		zk_fail("non-blocking pcap_dispatch after one frame: %d", n);
		goto out;
	}
	zk_note("200 ms timeout, no traffic: 0 packets after %ld ms; non-blocking: 0 at once, "
	    "then the one frame sent (BIOCROTZBUF)", dt);
	rc = 0;
out:
	pcap_close(p);
	return (rc);
}

static int
check_env(void)
{
	char err[PCAP_ERRBUF_SIZE];
	struct rx r = { .port = PORT + 3 };
	pcap_t *p;
	uint32_t i;

	/* BPF_ZEROCOPY=0: buffered read(2) mode. */
	unset_env();
	setenv("BPF_ZEROCOPY", "0", 1);
	p = open_capture(20, 0, err);
	if (p == NULL)
		return (zk_fail("BPF_ZEROCOPY=0: pcap_activate: %s", err));
	if (bufmode(p) != BPF_BUFMODE_BUFFER) {
		pcap_close(p);
		return (zk_fail("BPF_ZEROCOPY=0: buffer mode %u", bufmode(p)));
	}
	set_filter(p, PORT + 3);
	for (i = 0; i < 50; i++)
		zk_send(i, PORT + 3, 0);
	if (dispatch_until(p, &r, 50, 5000) != 0) {
		pcap_close(p);
		return (-1);
	}
	pcap_close(p);
	zk_note("BPF_ZEROCOPY=0: BUFFER mode, 50 frames read(2) byte for byte");
	/* BPF_ZEROCOPY=1 with zero copy switched off: a clear error. */
	setenv("BPF_ZEROCOPY", "1", 1);
	zsim_sysctl_set("zerocopy_enable", 0);
	p = open_capture(20, 0, err);
	zsim_sysctl_set("zerocopy_enable", 1);
	if (p != NULL) {
		pcap_close(p);
		return (zk_fail("BPF_ZEROCOPY=1 with zerocopy_enable 0: activation succeeded"));
	}
	if (strstr(err, "net.zbpf.zerocopy_enable") == NULL)
		return (zk_fail("BPF_ZEROCOPY=1, zerocopy_enable 0: message \"%s\"", err));
	zk_note("BPF_ZEROCOPY=1, zerocopy_enable 0: \"%s\"", err);
	p = open_capture(20, 0, err);
	if (p == NULL || bufmode(p) != BPF_BUFMODE_ZBUF)
		return (zk_fail("BPF_ZEROCOPY=1: %s", p == NULL ? err : "not zero copy"));
	pcap_close(p);
	setenv("BPF_ZEROCOPY", "yes", 1);
	p = open_capture(20, 0, err);
	if (p != NULL || strstr(err, "BPF_ZEROCOPY") == NULL)
		return (zk_fail("BPF_ZEROCOPY=yes: accepted"));
	zk_note("BPF_ZEROCOPY=1: zero copy; BPF_ZEROCOPY=yes: \"%s\"", err);
	/* PCAP_BPF_DEVICE names the device; without /dev/zbpf, /dev/bpf. */
	unset_env();
	setenv("PCAP_BPF_DEVICE", "/dev/bpf", 1);
	p = open_capture(20, 0, err);
	if (p == NULL || strcmp(zsg_last_open, "/dev/bpf") != 0)
		return (zk_fail("PCAP_BPF_DEVICE=/dev/bpf: %s", p == NULL ? err : zsg_last_open));
	pcap_close(p);
	setenv("PCAP_BPF_DEVICE", "/dev/nosuchbpf", 1);
	p = open_capture(20, 0, err);
	if (p != NULL || strstr(err, "/dev/nosuchbpf") == NULL)
		return (zk_fail("PCAP_BPF_DEVICE=/dev/nosuchbpf: %s", p ? "opened" : err));
	zk_note("PCAP_BPF_DEVICE=/dev/nosuchbpf: \"%s\"", err);
	unset_env();
	setenv("ZSIM_NO_ZBPF", "1", 1);
	p = open_capture(20, 0, err);
	if (p == NULL || strcmp(zsg_last_open, "/dev/bpf") != 0 || bufmode(p) != BPF_BUFMODE_ZBUF)
		return (zk_fail("no /dev/zbpf: %s", p == NULL ? err : zsg_last_open));
	pcap_close(p);
	unset_env();
	zk_note("PCAP_BPF_DEVICE=/dev/bpf opens it; with no /dev/zbpf, /dev/bpf in zero copy");
	return (0);
}

/*
 * fork, the child reads: the parent captures, forks, and stops reading; the
 * child goes on with the same pcap_t (pcap_dispatch, blocking, with its
 * timeout) and sees the frames sent after the fork. The child's system
 * calls reach the simulated kernel in the parent (zsim-glue.c); the frames
 * reach it through the shared buffers. Then the child exits and the parent
 * reads again, with its idea of the next buffer from before the fork: right
 * or stale depending on how many buffers the child took (parity). It gets,
 * perhaps, frames from before (the child's last buffer, never given back),
 * then every new frame in order.
 */
static int
check_fork_child(int parity)
{
	char err[PCAP_ERRBUF_SIZE];
	struct rx r = { .port = PORT + 4 };
	struct sender s;
	int pfd[2], status, rc = -1;
	pcap_t *p;
	pid_t pid;
	const uint32_t before = 200, child_n = 500, after = 200;
	uint32_t seq = before, child_got = before;

	unset_env();
	p = open_capture(20, 16384, err);
	if (p == NULL)
		return (zk_fail("pcap_activate: %s", err));
	if (set_filter(p, PORT + 4) != 0 || start_sender(&s, &r, 0, before, 8, PORT + 4, 0) != 0)
		goto out;
	if (dispatch_until(p, &r, before, 10000) != 0 || stop_sender(&s) != 0)
		goto out;
	if (pipe(pfd) != 0)
		goto out;
	fflush(stdout);
	pid = zsg_fork();
	if (pid < 0) {
		zk_fail("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* The child reads at least child_n frames, and stops after an
		 * even or odd number of buffers (`parity`), so that the parent's
		 * idea of the next buffer is right in one run and stale in the
		 * other. */
		long deadline = zk_deadline_ms(20000);
		unsigned int nbuf = 0;

		close(pfd[0]);
		while ((r.got < before + child_n || nbuf % 2 != (unsigned int)parity) && !r.bad &&
		    zk_now_ms() < deadline) {
			int n = pcap_dispatch(p, -1, on_packet, (u_char *)&r);

			if (n < 0)
				_exit(2);
			if (n > 0)
				nbuf++;
			uint32_t g = r.got;
			if (write(pfd[1], &g, sizeof(g)) != sizeof(g))
				_exit(3);
		}
		_exit(r.got >= before + child_n && nbuf % 2 == (unsigned int)parity && !r.bad ?
		    0 : 1);
	}
	close(pfd[1]);
	/* The parent sends, paced by the child's progress, and reads nothing,
	 * until the child is done. */
	{
		uint32_t g;
		long deadline = zk_deadline_ms(20000);
		int reaped = 0;

		while (zk_now_ms() < deadline) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				reaped = 1;
				break;
			}
			while (seq - child_got < 8)
				if (zk_send(seq++, PORT + 4, 0) != 0)
					break;
			struct pollfd q = { pfd[0], POLLIN, 0 };
			if (poll(&q, 1, 20) > 0 && read(pfd[0], &g, sizeof(g)) == sizeof(g))
				child_got = g;
		}
		close(pfd[0]);
		if (!reaped && waitpid(pid, &status, 0) != pid)
			status = -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		zk_fail("child: status 0x%x", status);
		goto out;
	}
	zk_note("child: %u frames after the fork through the inherited pcap_t (stopping "
	    "after an %s number of buffers), the parent reading nothing", child_got - before,
	    parity ? "odd" : "even");
	/* The parent again. */
	r.expect = r.got = r.done = r.stale_below = seq;
	if (start_sender(&s, &r, seq, after, 8, PORT + 4, 0) != 0)
		goto out;
	if (dispatch_until(p, &r, seq + after, 10000) != 0) {
		stop_sender(&s);
		goto out;
	}
	stop_sender(&s);
	zk_note("parent, after the child exited: %u frames from before came (the child's "
	    "last buffer, not given back, and what it left), then %u new ones in order",
	    r.stale, after);
	rc = 0;
out:
	pcap_close(p);
	return (rc);
}

/*
 * fork, the parent reads: the child closes its copy of the pcap_t (as a
 * child about to exec would) and lives on; the parent keeps capturing.
 */
static int
check_fork_parent(void)
{
	char err[PCAP_ERRBUF_SIZE];
	struct rx r = { .port = PORT + 5 };
	struct sender s;
	int pfd[2], status, rc = -1;
	pcap_t *p;
	pid_t pid;
	const uint32_t before = 100, after = 1000;

	unset_env();
	p = open_capture(20, 16384, err);
	if (p == NULL)
		return (zk_fail("pcap_activate: %s", err));
	if (set_filter(p, PORT + 5) != 0 || start_sender(&s, &r, 0, before, 8, PORT + 5, 0) != 0)
		goto out;
	if (dispatch_until(p, &r, before, 10000) != 0 || stop_sender(&s) != 0)
		goto out;
	if (pipe(pfd) != 0)
		goto out;
	fflush(stdout);
	pid = zsg_fork();
	if (pid < 0) {
		zk_fail("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char b;

		close(pfd[1]);
		pcap_close(p);
		(void)read(pfd[0], &b, 1);	/* until the parent is done */
		_exit(0);
	}
	close(pfd[0]);
	if (start_sender(&s, &r, before, after, 8, PORT + 5, 0) != 0) {
		close(pfd[1]);
		waitpid(pid, &status, 0);
		goto out;
	}
	rc = dispatch_until(p, &r, before + after, 20000);
	if (stop_sender(&s) != 0)
		rc = -1;
	close(pfd[1]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		zk_fail("child: status 0x%x", status);
		rc = -1;
	}
	if (rc == 0)
		zk_note("parent: %u frames after the fork, its child alive after closing its "
		    "copy of the pcap_t", after);
out:
	pcap_close(p);
	return (rc);
}

static int fork_child_even(void) { return (check_fork_child(0)); }
static int fork_child_odd(void) { return (check_fork_child(1)); }


static const struct zk_check checks[] = {
	{ "pcap-version", check_version },
	{ "pcap-zerocopy-default", check_zerocopy_default },
	{ "pcap-no-syscall-when-buffer-waits", check_no_syscall },
	{ "pcap-timeout-nonblock", check_timeout },
	{ "pcap-environment", check_env },
	{ "pcap-fork-child-even", fork_child_even },
	{ "pcap-fork-child-odd", fork_child_odd },
	{ "pcap-fork-parent", check_fork_parent },
};

int
main(int argc, char **argv)
{
	int status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	zk_check_name = "setup";
	if (zk_env_init("/dev/bpf", "epair0a", "epair0b", "epair9a", "epair9b") != 0) {
		printf("FAIL setup\n0 passed, 1 failed\n");
		return (1);
	}
	status = zk_run_checks(checks, sizeof(checks) / sizeof(checks[0]), argc, argv);
	return (status);
}

/*
 * zk_checks.c: the kit's checks that run both on FreeBSD and in the
 * simulator. Each returns 0 on success, -1 (with notes) on failure.
 */
#include "zk.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

int zk_iface_destroy(const char *name);

#define BUF_BLEN	16384	/* BUFFER mode buffer size */
#define REC_MAX(plen)	BPF_WORDALIGN(64 + 42 + (plen))	/* record size bound */

/* ---- A capture session in either mode. ---- */

struct cap {
	int fd;
	int zbuf;
	struct zk_zbuf z;
	uint8_t *rbuf;
	size_t blen;		/* BUFFER: read size; ZBUF: data bytes per buffer */
	uint16_t port;
	size_t fixed;
	uint32_t expect;	/* next seq */
	uint32_t got;
	uint32_t buffers;	/* non-empty buffers seen */
	volatile uint32_t acked;	/* frames given back (for the sender) */
};

static int
on_record(void *arg, const uint8_t *f, uint32_t caplen, uint32_t datalen)
{
	struct cap *c = arg;
	long seq = zk_verify(f, caplen, datalen, c->port, c->fixed);

	if (seq < 0)
		return (-1);
	if ((uint32_t)seq != c->expect)
		return (zk_fail("frame %ld where %u was due (lost, repeated or out of order)",
		    seq, c->expect));
	c->expect++;
	c->got++;
	return (0);
}

/* Opens and sets up a capture on `ifname`; `zlen`: ZBUF buffer bytes. */
static int
cap_open(struct cap *c, int zbuf, const char *ifname, uint16_t port, size_t fixed,
    size_t zlen, int shared)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->zbuf = zbuf;
	c->port = port;
	c->fixed = fixed;
	c->fd = zk_dev_open();
	if (c->fd < 0)
		return (-1);
	if (zbuf) {
		if (zk_zbuf_setup(&c->z, c->fd, zlen, shared) != 0)
			return (-1);
		c->blen = c->z.len - sizeof(struct bpf_zbuf_header);
	} else {
		unsigned int v = BUF_BLEN;

		if (zk_ioctl(c->fd, BIOCSBLEN, &v) != 0)
			return (zk_fail("BIOCSBLEN: %s", strerror(errno)));
		c->blen = v;
		c->rbuf = malloc(v);
		if (c->rbuf == NULL)
			return (zk_fail("malloc"));
		struct timeval tv = { 0, 20000 };
		if (zk_ioctl(c->fd, BIOCSRTIMEOUT, &tv) != 0)
			return (zk_fail("BIOCSRTIMEOUT: %s", strerror(errno)));
	}
	if (zk_ioctl(c->fd, BIOCSETF, zk_udp_port_filter(port)) != 0)
		return (zk_fail("BIOCSETF: %s", strerror(errno)));
	return (zk_attach(c->fd, ifname));
}

/* One buffer's worth: returns records processed, or -1. */
static int
cap_once(struct cap *c, int timeout_ms)
{
	uint32_t before = c->got;

	if (c->zbuf) {
		const uint8_t *d;
		size_t n;
		int r = zk_zbuf_next(&c->z, timeout_ms, &d, &n);

		if (r < 0)
			return (-1);
		if (r == 0)
			return (0);
		if (n > 0)
			c->buffers++;
		if (zk_walk(d, n, on_record, c) != 0)
			return (-1);
		zk_zbuf_ack(&c->z);
	} else {
		ssize_t n = zk_read(c->fd, c->rbuf, c->blen);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return (0);
			return (zk_fail("read: %s", strerror(errno)));
		}
		if (n > 0)
			c->buffers++;
		if (zk_walk(c->rbuf, (size_t)n, on_record, c) != 0)
			return (-1);
	}
	__atomic_store_n(&c->acked, c->got, __ATOMIC_RELEASE);
	return ((int)(c->got - before));
}

static void
cap_close(struct cap *c)
{
	if (c->fd >= 0)
		zk_close(c->fd);
	if (c->zbuf)
		zk_zbuf_free(&c->z);
	free(c->rbuf);
	c->fd = -1;
	c->rbuf = NULL;
}

/* ---- A sender thread with a window over what the consumer gave back. ---- */

struct sender {
	pthread_t th;
	struct cap *c;
	uint32_t first, n, window;
	uint16_t port;
	size_t fixed;
	int gap_ms;		/* pause between frames (0: none) */
	int start_ms;		/* pause before the first */
	volatile int stop;
	int err;
	uint32_t sent;
};

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	long deadline = zk_deadline_ms(60000);

	if (s->start_ms)
		zk_sleep_ms(s->start_ms);
	for (s->sent = 0; s->sent < s->n && !s->stop; s->sent++) {
		/* Frames are numbered as the consumer counts them: the ones
		 * outstanding are those sent and not yet given back. */
		while (s->c != NULL && s->window != 0 &&
		    s->first + s->sent - __atomic_load_n(&s->c->acked, __ATOMIC_ACQUIRE) >=
		    s->window) {
			if (s->stop || zk_now_ms() > deadline) {
				s->err = 1;
				return (NULL);
			}
			zk_sleep_ms(1);
		}
		if (zk_send(s->first + s->sent, s->port, s->fixed) != 0) {
			s->err = 1;
			return (NULL);
		}
		if (s->gap_ms)
			zk_sleep_ms(s->gap_ms);
	}
	return (NULL);
}

static int
sender_start(struct sender *s, struct cap *c, uint32_t first, uint32_t n,
    uint32_t window, uint16_t port, size_t fixed, int start_ms)
{
	memset(s, 0, sizeof(*s));
	s->start_ms = start_ms;
	s->c = c;
	s->first = first;
	s->n = n;
	s->window = window;
	s->port = port;
	s->fixed = fixed;
	if (pthread_create(&s->th, NULL, sender_main, s) != 0)
		return (zk_fail("pthread_create"));
	return (0);
}

static int
sender_join(struct sender *s)
{
	s->stop = 1;
	pthread_join(s->th, NULL);
	return (s->err ? -1 : 0);
}

/* Receives until `total` frames arrived or `ms` passed. */
static int
cap_until(struct cap *c, uint32_t total, int timeout_ms, long ms)
{
	long t0 = zk_now_ms(), deadline = zk_deadline_ms(ms);

	while (c->got < total) {
		if (zk_now_ms() > deadline)
			return (zk_fail("%u of %u frames after %ld ms", c->got, total,
			    zk_now_ms() - t0));
		if (cap_once(c, timeout_ms) < 0)
			return (-1);
	}
	return (0);
}

/* ---- device ---- */

int
zk_check_device(void)
{
	struct bpf_version bv;
	unsigned int mode = 0, blen = 0;
	int fd = zk_dev_open();

	if (fd < 0)
		return (-1);
	if (zk_ioctl(fd, BIOCVERSION, &bv) != 0 || bv.bv_major != BPF_MAJOR_VERSION ||
	    bv.bv_minor < BPF_MINOR_VERSION)
		return (zk_fail("BIOCVERSION: %s (%u.%u)", strerror(errno), bv.bv_major, bv.bv_minor));
	if (zk_ioctl(fd, BIOCGETBUFMODE, &mode) != 0 || mode != BPF_BUFMODE_BUFFER)
		return (zk_fail("BIOCGETBUFMODE: mode %u, want BUFFER", mode));
	if (zk_ioctl(fd, BIOCGBLEN, &blen) != 0 || blen == 0)
		return (zk_fail("BIOCGBLEN: %s", strerror(errno)));
	zk_note("%s: bpf version %u.%u, buffer mode BUFFER, %u-byte buffers", zk.device,
	    bv.bv_major, bv.bv_minor, blen);
	zk_close(fd);
	return (0);
}

/* ---- zerocopy-sysctl: on by default, and it gates BIOCSETBUFMODE ---- */

int
zk_check_zerocopy_sysctl(void)
{
	unsigned int mode = BPF_BUFMODE_ZBUF;
	int fd, r, e, on = -1;

	if (zk_sysctl_get("zerocopy_enable", &on) != 0)
		return (zk_fail("%s.zerocopy_enable: %s", zk.sysctl, strerror(errno)));
	if (on != 1)
		return (zk_fail("%s.zerocopy_enable is %d, want 1 (the default)", zk.sysctl, on));
	if (zk_sysctl_set("zerocopy_enable", 0) != 0)
		return (zk_fail("setting %s.zerocopy_enable: %s", zk.sysctl, strerror(errno)));
	fd = zk_dev_open();
	r = fd < 0 ? -1 : zk_ioctl(fd, BIOCSETBUFMODE, &mode);
	e = errno;
	if (fd >= 0)
		zk_close(fd);
	zk_sysctl_set("zerocopy_enable", 1);
	if (fd < 0)
		return (-1);
	if (r != -1 || e != EINVAL)
		return (zk_fail("BIOCSETBUFMODE(ZBUF) with zerocopy_enable 0: %d (%s), want EINVAL",
		    r, strerror(e)));
	zk_note("%s.zerocopy_enable is 1; set to 0, BIOCSETBUFMODE(ZBUF) fails with EINVAL",
	    zk.sysctl);
	return (0);
}

/* ---- capture-buffer, capture-zbuf ---- */

int
zk_check_capture(int zbuf_mode)
{
	struct cap c;
	struct sender s;
	struct bpf_stat st;
	uint16_t port = ZK_PORT_BASE + (zbuf_mode ? 2 : 1);
	const uint32_t n1 = 300;
	uint32_t n2 = 0, seq, rec_window;
	size_t bytes = 0, cap_bytes;
	unsigned long shm_before;
	int rc = -1;

	if (cap_open(&c, zbuf_mode, zk.rx_if, port, 0, 0, 1) != 0)
		goto out;
	/* Phase 1: a stream, the sender never further ahead than one buffer
	 * can hold, so nothing may be dropped; buffers hand over on timeout
	 * (read timeout, or poll timeout and BIOCROTZBUF). */
	rec_window = (uint32_t)(c.blen / REC_MAX(1011));
	if (sender_start(&s, &c, 0, n1, rec_window, port, 0, 0) != 0)
		goto out;
	if (cap_until(&c, n1, 20, 30000) != 0) {
		sender_join(&s);
		goto out;
	}
	if (sender_join(&s) != 0)
		goto out;
	/* Phase 2: a burst of about 1.5 buffers while nobody reads: the first
	 * buffer fills and is handed over without any system call. */
	cap_bytes = c.blen;
	for (seq = n1; bytes < cap_bytes + cap_bytes / 2; seq++) {
		size_t r = REC_MAX(zk_payload_len(seq, 0));

		if (bytes + r > 2 * cap_bytes - 2 * REC_MAX(1011))
			break;
		if (zk_send(seq, port, 0) != 0)
			goto out;
		bytes += r;
		n2++;
	}
	zk_sleep_ms(300);
	shm_before = c.z.taken_shm;
	if (cap_until(&c, n1 + n2, 20, 10000) != 0)
		goto out;
	if (zbuf_mode && c.z.taken_shm == shm_before)
		goto fail_shm;
	if (zk_ioctl(c.fd, BIOCGSTATS, &st) != 0) {
		zk_fail("BIOCGSTATS: %s", strerror(errno));
		goto out;
	}
	if (st.bs_drop != 0 || st.bs_recv < n1 + n2) {
		zk_fail("counters: received %u, dropped %u; %u frames sent", st.bs_recv,
		    st.bs_drop, n1 + n2);
		goto out;
	}
#ifdef ZK_SIM
	if (st.bs_recv != n1 + n2) {
		zk_fail("counters: received %u, but exactly %u frames crossed the interface",
		    st.bs_recv, n1 + n2);
		goto out;
	}
#endif
	zk_note("%u frames byte for byte and in order in %u buffers (%zu data bytes each); "
	    "BIOCGSTATS received %u, dropped %u", c.got, c.buffers, c.blen, st.bs_recv,
	    st.bs_drop);
	if (zbuf_mode)
		zk_note("zero-copy consumer: %lu buffers taken, %lu straight from shared memory, "
		    "%lu polls, %lu BIOCROTZBUF (%lu rotated)", c.z.taken, c.z.taken_shm,
		    c.z.polls, c.z.rotations, c.z.rotated);
	rc = 0;
	goto out;
fail_shm:
	zk_fail("the burst's full buffer was not found in shared memory first");
out:
	cap_close(&c);
	return (rc);
}

/* ---- timing: non-blocking, read timeout, immediate, poll, ZBUF timeout ---- */

int
zk_check_timing(void)
{
	struct cap c;
	struct sender s;
	struct timeval tv;
	struct pollfd pfd;
	unsigned int on = 1;
	uint16_t port = ZK_PORT_BASE + 3;
	long t0, dt;
	ssize_t n;
	int rc = -1, r;

	if (cap_open(&c, 0, zk.rx_if, port, 100, 0, 0) != 0)
		goto out;
	/* Non-blocking, nothing there: EWOULDBLOCK at once. */
	zk_setnonblock(c.fd, 1);
	t0 = zk_now_ms();
	n = zk_read(c.fd, c.rbuf, c.blen);
	if (n != -1 || errno != EAGAIN) {
		zk_fail("non-blocking read with nothing captured: %zd (%s), want EWOULDBLOCK",
		    n, n < 0 ? strerror(errno) : "data");
		goto out;
	}
	zk_setnonblock(c.fd, 0);
	/* Read timeout, nothing there: 0 bytes after the timeout. */
	tv.tv_sec = 0;
	tv.tv_usec = 300000;
	zk_ioctl(c.fd, BIOCSRTIMEOUT, &tv);
	t0 = zk_now_ms();
	n = zk_read(c.fd, c.rbuf, c.blen);
	dt = zk_now_ms() - t0;
	if (n != 0 || dt < 200 || dt > 3000) {
		zk_fail("read with a 300 ms timeout and no traffic: %zd after %ld ms", n, dt);
		goto out;
	}
	zk_note("non-blocking read: EWOULDBLOCK; 300 ms timeout: 0 bytes after %ld ms", dt);
	/* Read timeout with one frame: it waits in the store buffer until the
	 * timeout, then comes back. */
	if (zk_send(0, port, 100) != 0)
		goto out;
	t0 = zk_now_ms();
	r = cap_once(&c, 0);
	dt = zk_now_ms() - t0;
	if (r != 1 || dt < 150 || dt > 3000) {
		zk_fail("one frame and a 300 ms timeout: %d frames after %ld ms", r, dt);
		goto out;
	}
	/* poll: nothing, then not readable within its timeout. */
	pfd.fd = c.fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	r = zk_poll(&pfd, 1, 100);
	if (r != 0) {
		zk_fail("poll with nothing captured: %d (revents 0x%x)", r, pfd.revents);
		goto out;
	}
	/* Immediate mode, long timeout: a frame sent 150 ms later comes back
	 * at once, not after the timeout. */
	tv.tv_sec = 10;
	tv.tv_usec = 0;
	zk_ioctl(c.fd, BIOCSRTIMEOUT, &tv);
	if (zk_ioctl(c.fd, BIOCIMMEDIATE, &on) != 0) {
		zk_fail("BIOCIMMEDIATE: %s", strerror(errno));
		goto out;
	}
	if (sender_start(&s, NULL, 1, 1, 0, port, 100, 150) != 0)
		goto out;
	t0 = zk_now_ms();
	r = cap_once(&c, 0);
	dt = zk_now_ms() - t0;
	sender_join(&s);
	if (r != 1 || dt > 5000) {
		zk_fail("immediate mode: %d frames after %ld ms (timeout 10 s)", r, dt);
		goto out;
	}
	/* Immediate mode makes poll report a single frame as readable. */
	if (zk_send(2, port, 100) != 0)
		goto out;
	pfd.revents = 0;
	r = zk_poll(&pfd, 1, 3000);
	if (r != 1 || !(pfd.revents & POLLIN)) {
		zk_fail("immediate mode: poll after one frame: %d (revents 0x%x)", r, pfd.revents);
		goto out;
	}
	if (cap_once(&c, 0) != 1)
		goto out;
	zk_note("one frame, 300 ms timeout: back after the timeout; immediate mode: back "
	    "in %ld ms with a 10 s timeout; poll: not readable when empty, readable on a frame", dt);
	cap_close(&c);

	/* ZBUF: no rotation on timeout by itself; poll times out, BIOCROTZBUF
	 * hands over the partly filled buffer. */
	if (cap_open(&c, 1, zk.rx_if, port, 100, 0, 1) != 0)
		goto out;
	c.expect = 10;
	if (zk_send(10, port, 100) != 0)
		goto out;
	zk_sleep_ms(50);
	{
		const uint8_t *d;
		size_t len;

		if (zk_zbuf_next_shm(&c.z, &d, &len) != 0) {
			zk_fail("ZBUF: a buffer with one frame was handed over without a rotation");
			goto out;
		}
	}
	t0 = zk_now_ms();
	r = cap_once(&c, 200);
	dt = zk_now_ms() - t0;
	if (r != 1 || c.z.rotated != 1) {
		zk_fail("ZBUF: poll timeout then BIOCROTZBUF: %d frames, %lu rotations handed over",
		    r, c.z.rotated);
		goto out;
	}
	if (cap_once(&c, -1) != 0 || c.z.rotated != 1) {
		zk_fail("ZBUF: BIOCROTZBUF with nothing captured handed over a buffer");
		goto out;
	}
	zk_note("ZBUF: one frame stays in the store buffer; poll timed out after %ld ms, "
	    "BIOCROTZBUF handed it over; with nothing captured it hands over nothing", dt);
	rc = 0;
out:
	cap_close(&c);
	return (rc);
}

/* ---- write: injection arrives on the peer ---- */

int
zk_check_write(void)
{
	struct cap c;
	uint8_t f[2048];
	unsigned int one = 1;
	uint16_t port = ZK_PORT_BASE + 4;
	const uint32_t n = 20;
	uint32_t i;
	int wfd, rc = -1;

	if (cap_open(&c, 0, zk.rx_if, port, 0, 0, 0) != 0)
		goto out;
	wfd = zk_dev_open();
	if (wfd < 0)
		goto out;
	if (zk_attach(wfd, zk.tx_if) != 0 || zk_ioctl(wfd, BIOCSHDRCMPLT, &one) != 0) {
		zk_fail("writer set-up: %s", strerror(errno));
		zk_close(wfd);
		goto out;
	}
	for (i = 0; i < n; i++) {
		size_t len = zk_build_frame(f, sizeof(f), i, port, 0);
		ssize_t w = zk_write(wfd, f, len);

		if (w != (ssize_t)len) {
			zk_fail("write of frame %u (%zu bytes): %zd (%s)", i, len, w,
			    w < 0 ? strerror(errno) : "short");
			zk_close(wfd);
			goto out;
		}
	}
#ifdef ZK_SIM
	if (zsim_iface_sent(zk.tx_if) < (int)n) {
		zk_fail("the simulator saw %d frames leave %s", zsim_iface_sent(zk.tx_if), zk.tx_if);
		zk_close(wfd);
		goto out;
	}
#endif
	zk_close(wfd);
	if (cap_until(&c, n, 20, 10000) != 0)
		goto out;
	zk_note("%u frames written on %s arrived on %s byte for byte", n, zk.tx_if, zk.rx_if);
	rc = 0;
out:
	cap_close(&c);
	return (rc);
}

/* ---- fork ---- */

/*
 * The reader forks. who_reads 0: the parent keeps capturing while the child
 * lives (and then exits); 1: the parent stops and the child captures. The
 * child never makes a system call on the device in the simulator (the
 * engine lives in the parent there): it only uses the shared headers, so
 * frames reach it when buffers fill. shared: MAP_SHARED buffers (patched
 * libpcap), else MAP_PRIVATE ones (stock libpcap; zbpf marks them
 * inherit-shared itself).
 */
int
zk_check_fork(int who_reads, int shared)
{
	struct cap c;
	struct sender s;
	uint16_t port = ZK_PORT_BASE + 5 + (uint16_t)who_reads;
	const size_t fixed = 1000;
	const uint32_t before = 20, after = 60;
	int pipefd[2], status, rc = -1;
	pid_t pid;

	if (cap_open(&c, 1, zk.rx_if, port, fixed, 0, shared) != 0)
		goto out;
	/* Some traffic before the fork, consumed by the parent. */
	if (sender_start(&s, &c, 0, before, 4, port, fixed, 0) != 0)
		goto out;
	if (cap_until(&c, before, 20, 20000) != 0 || sender_join(&s) != 0)
		goto out;
	if (pipe(pipefd) != 0) {
		zk_fail("pipe: %s", strerror(errno));
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		zk_fail("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		if (who_reads == 0) {
			/* Stay alive, touching nothing, until the parent is done
			 * (it closes its end of the pipe). */
			char b;

			close(pipefd[1]);
			(void)read(pipefd[0], &b, 1);
			_exit(0);
		}
		close(pipefd[0]);
		/* The child reads, from shared memory only in the simulator. */
		long deadline = zk_deadline_ms(20000);
		int ok = 0;

		while (c.got < before + after && zk_now_ms() < deadline) {
			const uint8_t *d;
			size_t n;
#ifdef ZK_SIM
			int r = zk_zbuf_next_shm(&c.z, &d, &n);
#else
			int r = zk_zbuf_next(&c.z, 50, &d, &n);
#endif
			if (r < 0)
				_exit(2);
			if (r == 0) {
				zk_sleep_ms(1);
				continue;
			}
			if (zk_walk(d, n, on_record, &c) != 0)
				_exit(3);
			zk_zbuf_ack(&c.z);
			/* Tell the parent how far we are (it paces the sender). */
			uint32_t got = c.got;
			if (write(pipefd[1], &got, sizeof(got)) != sizeof(got))
				_exit(4);
		}
		ok = c.got >= before + after;
		if (!ok)
			zk_note("child: %u of %u frames after the fork", c.got - before, after);
		_exit(ok ? 0 : 1);
	}
	close(who_reads == 0 ? pipefd[0] : pipefd[1]);
	if (who_reads == 0) {
		/* The parent goes on, its child alive. */
		if (sender_start(&s, &c, before, after, 4, port, fixed, 0) != 0)
			goto reap;
		if (cap_until(&c, before + after, 20, 20000) == 0 && sender_join(&s) == 0) {
			zk_note("parent: %u more frames after the fork, its child alive (%s buffers)",
			    after, shared ? "shared" : "private");
			rc = 0;
		} else
			sender_join(&s);
	} else {
		/* The parent sends, in bursts that fill buffers, and reads nothing;
		 * the child's progress (a pipe) paces it. */
		uint32_t seq = before, child_got = before;
		long deadline = zk_deadline_ms(20000);

		while (child_got < before + after && zk_now_ms() < deadline) {
			uint32_t k;

			for (k = 0; k < 8 && seq - child_got < 12; k++)
				if (zk_send(seq++, port, fixed) != 0)
					goto reap;
			struct pollfd p = { pipefd[0], POLLIN, 0 };
			while (poll(&p, 1, 20) > 0) {
				uint32_t g;

				if (read(pipefd[0], &g, sizeof(g)) != sizeof(g))
					break;
				child_got = g;
				p.revents = 0;
			}
		}
		rc = 0;
	}
reap:
	close(who_reads == 0 ? pipefd[1] : pipefd[0]);
	if (waitpid(pid, &status, 0) != pid) {
		zk_fail("waitpid: %s", strerror(errno));
		rc = -1;
	} else if (who_reads == 1) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			zk_note("child: %u frames after the fork, read from the %s buffers it "
			    "inherited, the parent reading nothing", after,
			    shared ? "shared" : "private");
		else {
			zk_fail("child: exit status 0x%x", status);
			rc = -1;
		}
	}
out:
	cap_close(&c);
	return (rc);
}

/* ---- hostile: scribbling over the shared buffers ---- */

struct scribbler {
	pthread_t th;
	struct zk_zbuf *z;
	volatile int stop;
	unsigned long writes;
};

static void *
scribble(void *arg)
{
	struct scribbler *s = arg;
	uint32_t x = 2463534242u;

	while (!s->stop) {
		int b;
		size_t i;

		for (b = 0; b < 2; b++) {
			volatile uint32_t *w = (volatile uint32_t *)(void *)s->z->buf[b];

			/* The header's words, and a sample of the data. */
			for (i = 0; i < 8; i++) {
				x ^= x << 13;
				x ^= x >> 17;
				x ^= x << 5;
				w[i] = x;
			}
			for (i = 8; i < s->z->len / 4; i += 61) {
				x ^= x << 13;
				x ^= x >> 17;
				x ^= x << 5;
				w[i] = x;
			}
			s->writes += 8 + s->z->len / 4 / 61;
		}
	}
	return (NULL);
}

int
zk_check_hostile(void)
{
	struct cap c, after;
	struct sender s;
	struct scribbler sc;
	struct bpf_stat st;
	uint16_t port = ZK_PORT_BASE + 7;
	long until;
	int i, rc = -1;

	if (cap_open(&c, 1, zk.rx_if, port, 0, 0, 1) != 0)
		goto out;
	memset(&sc, 0, sizeof(sc));
	sc.z = &c.z;
	if (pthread_create(&sc.th, NULL, scribble, &sc) != 0)
		goto out;
	if (sender_start(&s, NULL, 0, 1000000, 0, port, 0, 0) != 0) {
		sc.stop = 1;
		pthread_join(sc.th, NULL);
		goto out;
	}
	/* For a second: traffic, scribbling, and the consumer's own calls
	 * (rotations, polls, statistics) with garbage in the headers. */
	until = zk_now_ms() + 1000;
	for (i = 0; zk_now_ms() < until; i++) {
		struct bpf_zbuf bz;
		struct pollfd p = { c.fd, POLLIN, 0 };

		(void)zk_poll(&p, 1, 5);
		(void)zk_ioctl(c.fd, BIOCROTZBUF, &bz);
		(void)zk_ioctl(c.fd, BIOCGSTATS, &st);
		/* Acknowledge whatever generation happens to be there. */
		struct bpf_zbuf_header *h = (struct bpf_zbuf_header *)(void *)c.z.buf[i & 1];
		zk_store_rel(&h->bzh_user_gen, zk_load_acq(&h->bzh_kernel_gen));
	}
	sender_join(&s);
	sc.stop = 1;
	pthread_join(sc.th, NULL);
	if (zk_ioctl(c.fd, BIOCGSTATS, &st) != 0) {
		zk_fail("BIOCGSTATS after the scribbling: %s", strerror(errno));
		goto out;
	}
	zk_note("1 s of scribbling (%lu words) over both buffers while %u frames arrived; "
	    "the descriptor answers (received %u, dropped %u)", sc.writes, s.sent,
	    st.bs_recv, st.bs_drop);
	cap_close(&c);
	/* The device is still healthy: a new descriptor captures correctly. */
	/* Another port: frames of the scribbling phase may still be on the way. */
	port += 10;
	if (cap_open(&after, 1, zk.rx_if, port, 0, 0, 1) != 0)
		return (-1);
	if (sender_start(&s, &after, 0, 100, 4, port, 0, 0) != 0) {
		cap_close(&after);
		return (-1);
	}
	rc = cap_until(&after, 100, 20, 20000);
	if (sender_join(&s) != 0)
		rc = -1;
	if (rc == 0)
		zk_note("afterwards a new zero-copy descriptor captured 100 frames byte for byte");
	cap_close(&after);
	return (rc);
out:
	cap_close(&c);
	return (rc);
}

/* ---- bad-input: hostile arguments get FreeBSD's errno, nothing breaks ---- */

#ifdef ZK_SIM
#define ZK_UNKNOWN_CMD	ZSIM_IOW('B', 200, unsigned int)
#else
#define ZK_UNKNOWN_CMD	_IOW('B', 200, unsigned int)
#endif

/* expect(what, r, want): r must be -1 with errno `want`. */
static int
expect_errno(const char *what, long r, int want)
{
	int e = errno;

	if (r != -1 || e != want)
		return (zk_fail("%s: %ld (%s), want %s", what, r, r == -1 ? strerror(e) : "no error",
		    strerror(want)));
	return (0);
}

int
zk_check_bad_input(void)
{
	struct bpf_program bad_prog;
	struct bpf_zbuf bz;
	struct bpf_stat st;
	unsigned int v, mode = BPF_BUFMODE_ZBUF;
	uint8_t frame[128];
	void *hole, *page;
	int fd, fz, rc = -1;

	/* An address with nothing mapped: a page mapped, then given back. */
	hole = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
	page = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANON, -1, 0);
	if (hole == MAP_FAILED || page == MAP_FAILED)
		return (zk_fail("mmap: %s", strerror(errno)));
	munmap(hole, 4096);
	fd = zk_dev_open();
	fz = zk_dev_open();
	if (fd < 0 || fz < 0)
		goto out;
	bad_prog.bf_len = 2;
	bad_prog.bf_insns = hole;
	if (expect_errno("unknown command", zk_ioctl(fd, ZK_UNKNOWN_CMD, &v), EINVAL) ||
	    expect_errno("BIOCSETF, instructions at an unmapped address",
		zk_ioctl(fd, BIOCSETF, &bad_prog), EINVAL) ||
	    expect_errno("BIOCGSTATS into an unmapped address", zk_ioctl(fd, BIOCGSTATS, hole),
		EFAULT) ||
	    expect_errno("BIOCSETIF from an unmapped address", zk_ioctl(fd, BIOCSETIF, hole),
		EFAULT))
		goto out;
	v = 0;
	if (zk_ioctl(fd, BIOCGBLEN, &v) != 0 ||
	    expect_errno("read of the wrong size", zk_read(fd, frame, v / 2), EINVAL))
		goto out;
	if (zk_attach(fd, zk.tx_if) != 0 ||
	    expect_errno("write from an unmapped address", zk_write(fd, hole, 60), EFAULT))
		goto out;
	/* Zero copy: buffers that are not page aligned, then not mapped. */
	if (zk_ioctl(fz, BIOCSETBUFMODE, &mode) != 0) {
		zk_fail("BIOCSETBUFMODE(ZBUF): %s", strerror(errno));
		goto out;
	}
	bz.bz_bufa = (uint8_t *)page + 8;
	bz.bz_bufb = (uint8_t *)page + 4096;
	bz.bz_buflen = 4096;
	if (expect_errno("BIOCSETZBUF, a buffer not page aligned", zk_ioctl(fz, BIOCSETZBUF, &bz),
	    EINVAL))
		goto out;
	bz.bz_bufa = hole;
	if (expect_errno("BIOCSETZBUF, a buffer not mapped", zk_ioctl(fz, BIOCSETZBUF, &bz),
	    EFAULT))
		goto out;
	/* Both descriptors still answer. */
	if (zk_ioctl(fd, BIOCGSTATS, &st) != 0 || zk_ioctl(fz, BIOCGSTATS, &st) != 0) {
		zk_fail("BIOCGSTATS afterwards: %s", strerror(errno));
		goto out;
	}
	zk_note("unknown command EINVAL; unmapped filter EINVAL; unmapped ioctl argument, "
	    "write source and zero-copy buffer EFAULT; misaligned buffer and wrong read "
	    "size EINVAL; both descriptors still answer");
	rc = 0;
out:
	if (fd >= 0)
		zk_close(fd);
	if (fz >= 0)
		zk_close(fz);
	munmap(page, 2 * 4096);
	return (rc);
}

/* ---- depart: the interface goes away under a blocked reader ---- */

struct blocked_read {
	pthread_t th;
	struct cap *c;
	ssize_t n;
	int err;
	volatile int done;
};

static void *
blocked_reader(void *arg)
{
	struct blocked_read *b = arg;

	b->n = zk_read(b->c->fd, b->c->rbuf, b->c->blen);
	b->err = errno;
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return (NULL);
}

int
zk_check_depart(void)
{
	struct cap c, cz;
	struct blocked_read b;
	struct timeval none = { 0, 0 };
	struct pollfd p;
	uint16_t port = ZK_PORT_BASE + 8;
	long t0;
	int rc = -1, r;

	memset(&cz, 0, sizeof(cz));
	cz.fd = -1;
	if (cap_open(&c, 0, zk.spare_rx, port, 0, 0, 0) != 0)
		goto out;
	if (cap_open(&cz, 1, zk.spare_rx, port, 0, 0, 1) != 0)
		goto out;
	zk_ioctl(c.fd, BIOCSRTIMEOUT, &none);	/* block for ever */
	memset(&b, 0, sizeof(b));
	b.c = &c;
	if (pthread_create(&b.th, NULL, blocked_reader, &b) != 0)
		goto out;
	zk_sleep_ms(200);
	if (b.done) {
		zk_fail("read returned before the interface left: %zd (%s)", b.n, strerror(b.err));
		pthread_join(b.th, NULL);
		goto out;
	}
	t0 = zk_now_ms();
	if (zk_iface_destroy(zk.spare_rx) != 0 && zk_iface_destroy(zk.spare_tx) != 0) {
		zk_fail("destroying %s: %s", zk.spare_rx, strerror(errno));
		/* Unblock the reader some other way: close would not; give up. */
		goto out;
	}
	while (!__atomic_load_n(&b.done, __ATOMIC_ACQUIRE) && zk_now_ms() - t0 < 5000)
		zk_sleep_ms(5);
	if (!b.done) {
		zk_fail("a blocked read still waits 5 s after the interface left");
		goto out;
	}
	pthread_join(b.th, NULL);
	if (b.n != -1 || b.err != ENXIO) {
		zk_fail("blocked read after departure: %zd (%s), want ENXIO", b.n, strerror(b.err));
		goto out;
	}
	if (zk_read(c.fd, c.rbuf, c.blen) != -1 || errno != ENXIO) {
		zk_fail("read after departure: want ENXIO, got %s", strerror(errno));
		goto out;
	}
	p.fd = cz.fd;
	p.events = POLLIN;
	p.revents = 0;
	r = zk_poll(&p, 1, 2000);
	if (r != 1) {
		zk_fail("zero-copy descriptor: poll after departure: %d", r);
		goto out;
	}
	zk_note("blocked read woke with ENXIO %ld ms after %s left; read again: ENXIO; "
	    "the zero-copy descriptor polls ready (revents 0x%x)", zk_now_ms() - t0,
	    zk.spare_rx, p.revents);
	rc = 0;
out:
	cap_close(&c);
	if (cz.fd >= 0)
		cap_close(&cz);
	return (rc);
}

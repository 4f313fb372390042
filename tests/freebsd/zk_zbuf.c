/*
 * zk_zbuf.c: a zero-copy (ZBUF) consumer, the algorithm of zbpf's libpcap
 * patch (scripts/libpcap/zbpf.patch) written as a small library: set-up,
 * take the next buffer from shared memory, acknowledge, and wait with
 * poll(2) and BIOCROTZBUF only when no completed buffer is waiting. (The
 * patch also lets a process resume reading after another one that shared
 * its buffers stopped; the kit's consumers never take turns, so this one
 * leaves that out. tests/sim/pcap_zc.c runs the patch's own code.)
 */
#include "zk.h"

#include <stdlib.h>

unsigned int
zk_load_acq(volatile unsigned int *w)
{
	return (__atomic_load_n(w, __ATOMIC_ACQUIRE));
}

void
zk_store_rel(volatile unsigned int *w, unsigned int v)
{
	__atomic_store_n(w, v, __ATOMIC_RELEASE);
}

static void *
map_buffer(size_t len, int shared)
{
	void *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANON, -1, 0);
#if defined(INHERIT_SHARE)
	if (p != MAP_FAILED && shared)
		(void)minherit(p, len, INHERIT_SHARE);
#endif
	return (p);
}

int
zk_zbuf_setup(struct zk_zbuf *z, int fd, size_t len, int shared)
{
	unsigned int mode = BPF_BUFMODE_ZBUF;
	size_t zmax = 0;
	long page = sysconf(_SC_PAGESIZE);
	struct bpf_zbuf bz;
	int i;

	memset(z, 0, sizeof(*z));
	z->fd = fd;
	z->cur = z->last = -1;
	z->shared = shared;
	if (zk_ioctl(fd, BIOCSETBUFMODE, &mode) != 0)
		return (zk_fail("BIOCSETBUFMODE ZBUF: %s", strerror(errno)));
	if (zk_ioctl(fd, BIOCGETZMAX, &zmax) != 0)
		return (zk_fail("BIOCGETZMAX: %s", strerror(errno)));
	if (zmax < (size_t)page)
		return (zk_fail("BIOCGETZMAX says %zu bytes, less than a page", zmax));
	if (len == 0)
		len = 2 * (size_t)page;
	len = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
	if (len > zmax)
		len = zmax;
	z->len = len;
	for (i = 0; i < 2; i++) {
		void *p = map_buffer(len, shared);

		if (p == MAP_FAILED)
			return (zk_fail("mmap %zu bytes: %s", len, strerror(errno)));
		z->buf[i] = p;
	}
	memset(&bz, 0, sizeof(bz));
	bz.bz_bufa = z->buf[0];
	bz.bz_bufb = z->buf[1];
	bz.bz_buflen = len;
	if (zk_ioctl(fd, BIOCSETZBUF, &bz) != 0)
		return (zk_fail("BIOCSETZBUF (%zu-byte %s buffers): %s", len,
		    shared ? "shared" : "private", strerror(errno)));
	return (0);
}

int
zk_zbuf_next_shm(struct zk_zbuf *z, const uint8_t **data, size_t *len)
{
	int next = (z->last == 0) ? 1 : 0;
	struct bpf_zbuf_header *h = (struct bpf_zbuf_header *)(void *)z->buf[next];
	unsigned int gen, klen, room;

	if (z->cur >= 0)
		zk_zbuf_ack(z);
	gen = zk_load_acq(&h->bzh_kernel_gen);
	if (gen == h->bzh_user_gen)
		return (0);
	klen = h->bzh_kernel_len;
	room = (unsigned int)(z->len - sizeof(*h));
	if (klen > room)
		klen = room;
	z->cur = z->last = next;
	z->cur_gen = gen;
	z->taken++;
	*data = z->buf[next] + sizeof(*h);
	*len = klen;
	return (1);
}

void
zk_zbuf_ack(struct zk_zbuf *z)
{
	struct bpf_zbuf_header *h;

	if (z->cur < 0)
		return;
	h = (struct bpf_zbuf_header *)(void *)z->buf[z->cur];
#ifdef ZK_SELFTEST_BAD_ACK
	/* Only in the simulator's self-test build: a consumer that gives back
	 * the wrong generation, which the checks must catch. */
	zk_store_rel(&h->bzh_user_gen, z->cur_gen + 1);
#else
	zk_store_rel(&h->bzh_user_gen, z->cur_gen);
#endif
	z->cur = -1;
}

int
zk_zbuf_next(struct zk_zbuf *z, int timeout_ms, const uint8_t **data, size_t *len)
{
	struct bpf_zbuf bz;
	struct pollfd pfd;

	if (zk_zbuf_next_shm(z, data, len)) {
		z->taken_shm++;
		return (1);
	}
	if (timeout_ms >= 0) {
		pfd.fd = z->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		z->polls++;
		if (zk_poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR)
			return (zk_fail("poll: %s", strerror(errno)));
		if (zk_zbuf_next_shm(z, data, len))
			return (1);
	}
	memset(&bz, 0, sizeof(bz));
	z->rotations++;
	if (zk_ioctl(z->fd, BIOCROTZBUF, &bz) != 0)
		return (zk_fail("BIOCROTZBUF: %s", strerror(errno)));
	if (bz.bz_bufa != NULL) {
		z->rotated++;
		if (bz.bz_bufa != z->buf[0] && bz.bz_bufa != z->buf[1])
			return (zk_fail("BIOCROTZBUF names %p, not one of our buffers",
			    bz.bz_bufa));
	}
	return (zk_zbuf_next_shm(z, data, len));
}

void
zk_zbuf_free(struct zk_zbuf *z)
{
	int i;

	for (i = 0; i < 2; i++)
		if (z->buf[i] != NULL && z->buf[i] != MAP_FAILED)
			munmap(z->buf[i], z->len);
	z->buf[0] = z->buf[1] = NULL;
}

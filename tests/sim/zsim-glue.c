/*
 * zsim-glue.c: the system calls libpcap makes (renamed by zsim-prelude.h),
 * for libpcap built on Linux against the zbpf simulator.
 *
 * - open("/dev/zbpf") and open("/dev/bpf") open the simulated device (set
 *   ZSIM_NO_ZBPF=1 to make /dev/zbpf absent, as with the module loaded in
 *   replace mode); other paths do not exist. Descriptors of the simulated
 *   device are remembered, and calls on them go to the simulator; calls on
 *   any other descriptor go to the C library.
 * - Every call on a simulated descriptor is counted (zsg_calls), so a test
 *   can tell whether libpcap made a system call.
 * - fork: the engine lives in the process that created the simulated
 *   machine, so after zsg_fork() the child's calls on simulated descriptors
 *   travel over a socket pair to a thread of the parent, which makes them
 *   there, as FreeBSD's kernel serves both processes. The zero-copy buffers
 *   themselves are shared memory (MAP_SHARED) and are not involved: what
 *   the kernel writes into them, both processes see directly. The child's
 *   close() only drops its reference, as on FreeBSD: the descriptor stays
 *   open in the parent. ioctls whose argument holds pointers (BIOCSETF,
 *   BIOCSETZBUF) are not supported from the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "zsim.h"
#include "zsim-glue.h"

#define MAXFD 256

static int sim_fd[MAXFD];	/* 1: a simulated descriptor */
static int fd_flags[MAXFD];	/* O_ flags, for F_GETFL */
static int rpc_fd = -1;		/* in a child: its end of the socket pair */
const char *zsg_last_open;	/* path of the last successful open */
unsigned long zsg_calls;	/* calls on simulated descriptors */

static int
is_sim(int fd)
{
	return (fd >= 0 && fd < MAXFD && sim_fd[fd]);
}

/* ---- The child's requests, served by a thread of the parent. ---- */

enum { OP_IOCTL = 1, OP_POLL, OP_READ, OP_WRITE, OP_SETFL };

struct req {
	int op, fd, arg;	/* arg: poll timeout, or setfl flags */
	short events;
	unsigned long cmd;
	size_t len;		/* payload bytes that follow */
	size_t want;		/* bytes wanted back (read, ioctl out) */
};

struct rep {
	long ret;
	int err;
	short revents;
	size_t len;		/* payload bytes that follow */
};

static int
full_io(int fd, void *buf, size_t len, int out)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = out ? write(fd, p, len) : read(fd, p, len);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return (-1);
		}
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

static void *
serve(void *arg)
{
	int s = (int)(intptr_t)arg;
	struct req q;
	struct rep r;
	uint8_t *buf = NULL;

	while (full_io(s, &q, sizeof(q), 0) == 0) {
		size_t cap = q.len > q.want ? q.len : q.want;

		free(buf);
		buf = calloc(1, cap + 1);
		if (buf == NULL || full_io(s, buf, q.len, 0) != 0)
			break;
		memset(&r, 0, sizeof(r));
		switch (q.op) {
		case OP_IOCTL:
			r.ret = zsim_ioctl(q.fd, q.cmd, buf);
			r.len = r.ret == 0 ? q.want : 0;
			break;
		case OP_POLL: {
			struct pollfd p = { q.fd, q.events, 0 };

			r.ret = zsim_poll(&p, 1, q.arg);
			r.revents = p.revents;
			break;
		}
		case OP_READ:
			r.ret = zsim_read(q.fd, buf, q.want);
			r.len = r.ret > 0 ? (size_t)r.ret : 0;
			break;
		case OP_WRITE:
			r.ret = zsim_write(q.fd, buf, q.len);
			break;
		case OP_SETFL:
			r.ret = zsim_setfl(q.fd, q.arg);
			break;
		default:
			r.ret = -1;
			errno = EINVAL;
		}
		r.err = r.ret < 0 ? errno : 0;
		if (full_io(s, &r, sizeof(r), 1) != 0 || full_io(s, buf, r.len, 1) != 0)
			break;
	}
	free(buf);
	close(s);
	return (NULL);
}

/* A child's call: sends the request, waits for the answer. */
static long
call(struct req *q, const void *in, void *out, short *revents)
{
	struct rep r;

	if (full_io(rpc_fd, q, sizeof(*q), 1) != 0 ||
	    full_io(rpc_fd, (void *)(uintptr_t)in, q->len, 1) != 0 ||
	    full_io(rpc_fd, &r, sizeof(r), 0) != 0 ||
	    r.len > q->want || full_io(rpc_fd, out, r.len, 0) != 0) {
		errno = EIO;
		return (-1);
	}
	if (revents != NULL)
		*revents = r.revents;
	errno = r.err;
	return (r.ret);
}

pid_t
zsg_fork(void)
{
	int sv[2];
	pid_t pid;
	pthread_t th;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return (-1);
	pid = fork();
	if (pid < 0)
		return (-1);
	if (pid == 0) {
		close(sv[0]);
		rpc_fd = sv[1];
		return (0);
	}
	close(sv[1]);
	if (pthread_create(&th, NULL, serve, (void *)(intptr_t)sv[0]) != 0)
		return (-1);
	pthread_detach(th);
	return (pid);
}

/* ---- The calls. ---- */

int
zsg_open(const char *path, int flags, ...)
{
	int fd;

	if (strcmp(path, "/dev/bpf") != 0 &&
	    (strcmp(path, "/dev/zbpf") != 0 || getenv("ZSIM_NO_ZBPF") != NULL)) {
		errno = ENOENT;
		return (-1);
	}
	zsg_calls++;
	fd = zsim_open(path, flags);
	if (fd < 0)
		return (-1);
	if (fd >= MAXFD) {
		zsim_close(fd);
		errno = EMFILE;
		return (-1);
	}
	sim_fd[fd] = 1;
	fd_flags[fd] = flags & (O_ACCMODE | O_NONBLOCK);
	zsg_last_open = path;
	return (fd);
}

int
zsg_close(int fd)
{
	if (!is_sim(fd))
		return (close(fd));
	zsg_calls++;
	sim_fd[fd] = 0;
	if (rpc_fd >= 0)
		return (0);	/* the parent still holds it */
	return (zsim_close(fd));
}

int
zsg_ioctl(int fd, unsigned long cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!is_sim(fd))
		return (ioctl(fd, cmd, arg));
	zsg_calls++;
	if (rpc_fd >= 0) {
		struct req q;
		size_t len = ZSIM_IOCPARM_LEN(cmd);

		memset(&q, 0, sizeof(q));
		q.op = OP_IOCTL;
		q.fd = fd;
		q.cmd = cmd;
		q.len = (cmd & ZSIM_IOC_IN) ? len : 0;
		q.want = (cmd & ZSIM_IOC_OUT) ? len : 0;
		if (cmd == BIOCSETF || cmd == BIOCSETFNR || cmd == BIOCSETWF ||
		    cmd == BIOCSETZBUF || cmd == BIOCGDLTLIST) {
			errno = ENOSYS;	/* pointers into the child's memory */
			return (-1);
		}
		return ((int)call(&q, arg, arg, NULL));
	}
	return (zsim_ioctl(fd, cmd, arg));
}

ssize_t
zsg_read(int fd, void *buf, size_t len)
{
	if (!is_sim(fd))
		return (read(fd, buf, len));
	zsg_calls++;
	if (rpc_fd >= 0) {
		struct req q = { .op = OP_READ, .fd = fd, .want = len };

		return (call(&q, NULL, buf, NULL));
	}
	return (zsim_read(fd, buf, len));
}

ssize_t
zsg_write(int fd, const void *buf, size_t len)
{
	if (!is_sim(fd))
		return (write(fd, buf, len));
	zsg_calls++;
	if (rpc_fd >= 0) {
		struct req q = { .op = OP_WRITE, .fd = fd, .len = len };

		return (call(&q, buf, NULL, NULL));
	}
	return (zsim_write(fd, buf, len));
}

int
zsg_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (n != 1 || !is_sim(fds[0].fd))
		return (poll(fds, n, timeout));
	zsg_calls++;
	if (rpc_fd >= 0) {
		struct req q = { .op = OP_POLL, .fd = fds[0].fd, .events = fds[0].events,
		    .arg = timeout };

		return ((int)call(&q, NULL, NULL, &fds[0].revents));
	}
	return (zsim_poll(fds, n, timeout));
}

int
zsg_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (!is_sim(fd))
		return (fcntl(fd, cmd, arg));
	zsg_calls++;
	switch (cmd) {
	case F_GETFL:
		return (fd_flags[fd]);
	case F_SETFL: {
		int r;

		if (rpc_fd >= 0) {
			struct req q = { .op = OP_SETFL, .fd = fd, .arg = (int)arg };

			r = (int)call(&q, NULL, NULL, NULL);
		} else
			r = zsim_setfl(fd, (int)arg);
		if (r == 0)
			fd_flags[fd] = (fd_flags[fd] & O_ACCMODE) | ((int)arg & O_NONBLOCK);
		return (r);
	}
	default:
		errno = EINVAL;
		return (-1);
	}
}

int
sysctlbyname(const char *name, void *old, size_t *oldlen, const void *new_, size_t newlen)
{
	const char *leaf = strrchr(name, '.');
	int v;

	if (strncmp(name, "net.bpf.", 8) != 0 && strncmp(name, "net.zbpf.", 9) != 0) {
		errno = ENOENT;
		return (-1);
	}
	if (new_ != NULL && newlen == sizeof(int) &&
	    zsim_sysctl_set(leaf + 1, *(const int *)new_) != 0)
		return (-1);
	if (old != NULL) {
		if (oldlen == NULL || *oldlen < sizeof(int)) {
			errno = ENOMEM;
			return (-1);
		}
		if (zsim_sysctl_get(leaf + 1, &v) != 0)
			return (-1);
		memcpy(old, &v, sizeof(v));
		*oldlen = sizeof(v);
	}
	return (0);
}

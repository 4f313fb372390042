/*
 * sys.c: the device calls of tests/sim/zsim.h (zsim_open, zsim_ioctl,
 * zsim_read, zsim_write, zsim_close, zsim_setfl, zsim_poll and the sysctl
 * knobs) answered by the loaded module through the emulated system calls
 * (ukk_sys_*, ukk_sysctl).
 *
 * The kit is a Linux program: its open flags, poll bits and errno values
 * are Linux's, converted here to and from FreeBSD's. Ioctl commands and
 * their arguments are FreeBSD's already; an argument is a user address.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ukld.h"
#include "zsim.h"

/* FreeBSD's <sys/fcntl.h> file flags. */
#define	BSD_FREAD	0x0001
#define	BSD_FWRITE	0x0002
#define	BSD_FNONBLOCK	0x0004
#define	BSD_FAPPEND	0x0008
#define	BSD_FASYNC	0x0040

/* FreeBSD's <sys/poll.h> bits that differ from Linux's. */
#define	BSD_POLLWRNORM	0x0004
#define	BSD_POLLWRBAND	0x0100
#define	BSD_POLLRDHUP	0x4000

#define	BSD_ERESTART	(-1)

/* FreeBSD errno -> Linux errno. 1 to 34 are the same but for 11. */
static int
linux_errno(int e)
{
	static const int map[] = {
		[11] = EDEADLK,
		[35] = EAGAIN,		[36] = EINPROGRESS,
		[37] = EALREADY,	[38] = ENOTSOCK,
		[39] = EDESTADDRREQ,	[40] = EMSGSIZE,
		[41] = EPROTOTYPE,	[42] = ENOPROTOOPT,
		[43] = EPROTONOSUPPORT,	[44] = ESOCKTNOSUPPORT,
		[45] = EOPNOTSUPP,	[46] = EPFNOSUPPORT,
		[47] = EAFNOSUPPORT,	[48] = EADDRINUSE,
		[49] = EADDRNOTAVAIL,	[50] = ENETDOWN,
		[51] = ENETUNREACH,	[52] = ENETRESET,
		[53] = ECONNABORTED,	[54] = ECONNRESET,
		[55] = ENOBUFS,		[56] = EISCONN,
		[57] = ENOTCONN,	[58] = ESHUTDOWN,
		[59] = ETOOMANYREFS,	[60] = ETIMEDOUT,
		[61] = ECONNREFUSED,	[62] = ELOOP,
		[63] = ENAMETOOLONG,	[64] = EHOSTDOWN,
		[65] = EHOSTUNREACH,	[66] = ENOTEMPTY,
		[67] = EUSERS,		/* EPROCLIM: none on Linux */
		[68] = EUSERS,		[69] = EDQUOT,
		[70] = ESTALE,		[71] = EREMOTE,
		[72] = EPROTO,		/* EBADRPC .. EPROCUNAVAIL (72-76) */
		[73] = EPROTO,		[74] = EPROTO,
		[75] = EPROTO,		[76] = EPROTO,
		[77] = ENOLCK,		[78] = ENOSYS,
		[79] = EINVAL,		/* EFTYPE */
		[80] = EACCES,		/* EAUTH */
		[81] = EACCES,		/* ENEEDAUTH */
		[82] = EIDRM,		[83] = ENOMSG,
		[84] = EOVERFLOW,	[85] = ECANCELED,
		[86] = EILSEQ,		[87] = ENODATA,	/* ENOATTR */
		[88] = EINVAL,		/* EDOOFUS */
		[89] = EBADMSG,		[90] = EMULTIHOP,
		[91] = ENOLINK,		[92] = EPROTO,
		[93] = EPERM,		/* ENOTCAPABLE */
		[94] = EPERM,		/* ECAPMODE */
		[95] = ENOTRECOVERABLE,	[96] = EOWNERDEAD,
		[97] = EBADMSG,		/* EINTEGRITY */
	};

	if (e == BSD_ERESTART)
		return (EINTR);
	if (e > 0 && e < (int)(sizeof(map) / sizeof(map[0])) && map[e] != 0)
		return (map[e]);
	if (e > 0 && e <= 34)
		return (e);
	fprintf(stderr, "ukld: unexpected FreeBSD errno %d\n", e);
	return (EIO);
}

/* A system call's result: 0 or -1 with errno set. */
static int
sys_result(int error)
{
	if (error == 0)
		return (0);
	errno = linux_errno(error);
	return (-1);
}

static void
sys_enter(void)
{
	uh_boot();
	uh_cpu_enter();
}

static int
bsd_fflags(int flags)
{
	int f = 0;

	if ((flags & O_NONBLOCK) != 0)
		f |= BSD_FNONBLOCK;
	if ((flags & O_APPEND) != 0)
		f |= BSD_FAPPEND;
	if ((flags & O_ASYNC) != 0)
		f |= BSD_FASYNC;
	return (f);
}

int
zsim_open(const char *path, int flags)
{
	int fd, fflags;

	sys_enter();
	switch (flags & O_ACCMODE) {
	case O_RDONLY:
		fflags = BSD_FREAD;
		break;
	case O_WRONLY:
		fflags = BSD_FWRITE;
		break;
	case O_RDWR:
		fflags = BSD_FREAD | BSD_FWRITE;
		break;
	default:
		errno = EINVAL;
		return (-1);
	}
	fflags |= bsd_fflags(flags);
	if (sys_result(ukk_sys_open(path, fflags, &fd)) != 0)
		return (-1);
	return (fd);
}

int
zsim_ioctl(int fd, unsigned long cmd, void *arg)
{
	sys_enter();
	return (sys_result(ukk_sys_ioctl(fd, cmd, (uk_u64)(uintptr_t)arg)));
}

ssize_t
zsim_read(int fd, void *buf, size_t len)
{
	uk_size_t done;

	sys_enter();
	if (sys_result(ukk_sys_read(fd, (uk_u64)(uintptr_t)buf, len,
	    &done)) != 0)
		return (-1);
	return ((ssize_t)done);
}

ssize_t
zsim_write(int fd, const void *buf, size_t len)
{
	uk_size_t done;

	sys_enter();
	if (sys_result(ukk_sys_write(fd, (uk_u64)(uintptr_t)buf, len,
	    &done)) != 0)
		return (-1);
	return ((ssize_t)done);
}

int
zsim_close(int fd)
{
	sys_enter();
	return (sys_result(ukk_sys_close(fd)));
}

int
zsim_setfl(int fd, int flags)
{
	sys_enter();
	return (sys_result(ukk_sys_setfl(fd, bsd_fflags(flags))));
}

/* Linux poll bits -> FreeBSD's: the same but for WRNORM, WRBAND, RDHUP. */
static const struct {
	short lnx, bsd;
} poll_bits[] = {
	{ POLLIN, 0x0001 }, { POLLPRI, 0x0002 }, { POLLOUT, 0x0004 },
	{ POLLERR, 0x0008 }, { POLLHUP, 0x0010 }, { POLLNVAL, 0x0020 },
	{ POLLRDNORM, 0x0040 }, { POLLRDBAND, 0x0080 },
	{ POLLWRNORM, BSD_POLLWRNORM }, { POLLWRBAND, BSD_POLLWRBAND },
	{ POLLRDHUP, BSD_POLLRDHUP },
};

static short
poll_to_bsd(short events)
{
	short out = 0;
	size_t i;

	for (i = 0; i < sizeof(poll_bits) / sizeof(poll_bits[0]); i++)
		if ((events & poll_bits[i].lnx) != 0)
			out |= poll_bits[i].bsd;
	return (out);
}

/*
 * FreeBSD's POLLWRNORM is POLLOUT: that bit gives back whichever of the
 * two Linux bits was asked for (POLLOUT if neither was).
 */
static short
poll_from_bsd(short revents, short asked)
{
	short out = 0;
	size_t i;

	for (i = 0; i < sizeof(poll_bits) / sizeof(poll_bits[0]); i++)
		if ((revents & poll_bits[i].bsd) != 0 &&
		    poll_bits[i].bsd != BSD_POLLWRNORM)
			out |= poll_bits[i].lnx;
	if ((revents & BSD_POLLWRNORM) != 0) {
		out |= asked & (POLLOUT | POLLWRNORM);
		if ((asked & (POLLOUT | POLLWRNORM)) == 0)
			out |= POLLOUT;
	}
	return (out);
}

int
zsim_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct ukk_pollfd *ufds;
	nfds_t i;
	int error, n;

	sys_enter();
	ufds = calloc(nfds + 1, sizeof(*ufds));
	if (ufds == NULL) {
		errno = ENOMEM;
		return (-1);
	}
	for (i = 0; i < nfds; i++) {
		ufds[i].fd = fds[i].fd;
		ufds[i].events = poll_to_bsd(fds[i].events);
	}
	error = ukk_sys_poll(ufds, (int)nfds, timeout, &n);
	if (error == 0)
		for (i = 0; i < nfds; i++)
			fds[i].revents = poll_from_bsd(ufds[i].revents,
			    fds[i].events);
	free(ufds);
	if (sys_result(error) != 0)
		return (-1);
	return (n);
}

/* The knob `leaf` of whichever device the module made: net.zbpf or net.bpf. */
static void
sysctl_name(char *buf, size_t len, const char *leaf)
{
	snprintf(buf, len, "net.%s.%s", ukk_dev_exists("zbpf") ? "zbpf" :
	    "bpf", leaf);
}

int
zsim_sysctl_get(const char *name, int *value)
{
	char full[128];
	uk_size_t len = sizeof(*value);

	sys_enter();
	sysctl_name(full, sizeof(full), name);
	return (sys_result(ukk_sysctl(full, (uk_u64)(uintptr_t)value, &len, 0,
	    0)));
}

int
zsim_sysctl_set(const char *name, int value)
{
	char full[128];

	sys_enter();
	sysctl_name(full, sizeof(full), name);
	return (sys_result(ukk_sysctl(full, 0, NULL,
	    (uk_u64)(uintptr_t)&value, sizeof(value))));
}

/*
 * net.c: the simulated network of tests/sim/zsim.h (interfaces, pairs,
 * frames in and out) over the emulated interfaces of kpi/kpi_net.c.
 *
 * Each call boots the emulated machine if needed and runs on the calling
 * thread's own emulated CPU; FreeBSD errno values become Linux ones.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

#include "ukld.h"
#include "zsim.h"

/* FreeBSD errno values the calls below can return, as Linux's. */
static int
net_errno(int fbsd)
{
	if (fbsd >= 1 && fbsd <= 34)	/* EPERM..ERANGE: the same */
		return (fbsd);
	switch (fbsd) {
	case 40:
		return (EMSGSIZE);
	case 55:
		return (ENOBUFS);
	default:
		return (EIO);
	}
}

static int
net_fail(int fbsd)
{
	errno = net_errno(fbsd);
	return (-1);
}

static void
net_enter(void)
{
	uh_boot();
	(void)uh_cpu_enter();
}

int
zsim_iface_add(const char *name)
{
	int error;

	if (name == NULL)
		return (net_fail(22));		/* EINVAL */
	net_enter();
	error = ukk_if_create(name);
	if (error == 17)			/* EEXIST: zsim says EBUSY */
		error = 16;
	return (error != 0 ? net_fail(error) : 0);
}

int
zsim_iface_pair(const char *a, const char *b)
{
	int error;

	if (a == NULL || b == NULL)
		return (net_fail(6));		/* ENXIO */
	net_enter();
	error = ukk_if_pair(a, b);
	return (error != 0 ? net_fail(error) : 0);
}

int
zsim_iface_remove(const char *name)
{
	int error;

	if (name == NULL)
		return (net_fail(6));
	net_enter();
	error = ukk_if_destroy(name);
	return (error != 0 ? net_fail(error) : 0);
}

/*
 * Every call cuts its frame into a chain of another shape, from a counter:
 * one frame in four is a single mbuf, as most drivers hand them up.
 */
int
zsim_inject(const char *name, const void *frame, size_t len, int inbound)
{
	static atomic_uint calls;
	unsigned n, shape;
	int error;

	if (name == NULL)
		return (net_fail(6));
	if (frame == NULL && len != 0)
		return (net_fail(14));		/* EFAULT */
	net_enter();
	n = atomic_fetch_add(&calls, 1);
	shape = (n % 4 == 0) ? 0 : n;
	error = ukk_if_inject(name, frame, len, inbound, shape);
	return (error != 0 ? net_fail(error) : 0);
}

int
zsim_iface_sent(const char *name)
{
	int sent;

	if (name == NULL)
		return (net_fail(6));
	net_enter();
	sent = ukk_if_sent(name);
	return (sent < 0 ? net_fail(6) : sent);
}

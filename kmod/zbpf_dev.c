/*
 * zbpf_dev.c: the device, the module events, the sysctls and the taps of
 * zbpf.ko. Every operation is forwarded to the Rust engine (zbpf_rs_*);
 * this file only registers things with the kernel and calls through.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/conf.h>
#include <sys/ioccom.h>
#include <sys/priv.h>
#include <sys/malloc.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/proc.h>
#include <sys/uio.h>
#include <sys/poll.h>
#include <sys/event.h>
#include <sys/sysctl.h>
#include <sys/eventhandler.h>
#include <sys/epoch.h>
#include <sys/mbuf.h>
#include <sys/socket.h>

#include <net/if.h>
#include <net/if_var.h>

#include "zbpf_kpi.h"

/* ---------------------------------------------------------------------- */
/* The character device                                                   */

static d_open_t zbpf_open;
static d_read_t zbpf_read;
static d_write_t zbpf_write;
static d_ioctl_t zbpf_ioctl;
static d_poll_t zbpf_poll;
static d_kqfilter_t zbpf_kqfilter;

static struct cdevsw zbpf_cdevsw = {
	.d_version = D_VERSION,
	.d_open = zbpf_open,
	.d_read = zbpf_read,
	.d_write = zbpf_write,
	.d_ioctl = zbpf_ioctl,
	.d_poll = zbpf_poll,
	.d_kqfilter = zbpf_kqfilter,
	.d_name = "zbpf",
};

static struct cdev *zbpf_cdev;

static void
zbpf_dtor(void *cookie)
{
	zbpf_rs_close(cookie);
}

static int
zbpf_open(struct cdev *dev __unused, int oflags, int devtype __unused,
    struct thread *td __unused)
{
	void *cookie;
	int error;

	error = zbpf_rs_open(oflags, &cookie);
	if (error != 0)
		return (error);
	error = devfs_set_cdevpriv(cookie, zbpf_dtor);
	if (error != 0)
		zbpf_rs_close(cookie);
	return (error);
}

static int
zbpf_read(struct cdev *dev __unused, struct uio *uio, int ioflag)
{
	void *cookie;
	int error;

	error = devfs_get_cdevpriv(&cookie);
	if (error != 0)
		return (error);
	return (zbpf_rs_read(cookie, uio, ioflag));
}

static int
zbpf_write(struct cdev *dev __unused, struct uio *uio, int ioflag)
{
	void *cookie;
	int error;

	error = devfs_get_cdevpriv(&cookie);
	if (error != 0)
		return (error);
	return (zbpf_rs_write(cookie, uio, ioflag));
}

static int
zbpf_ioctl(struct cdev *dev __unused, u_long cmd, caddr_t data,
    int fflag __unused, struct thread *td __unused)
{
	void *cookie;
	int error;

	error = devfs_get_cdevpriv(&cookie);
	if (error != 0)
		return (error);
	return (zbpf_rs_ioctl(cookie, cmd, (uint8_t *)data, IOCPARM_LEN(cmd)));
}

static int
zbpf_poll(struct cdev *dev __unused, int events, struct thread *td)
{
	void *cookie;

	if (devfs_get_cdevpriv(&cookie) != 0)
		cookie = NULL;
	return (zbpf_rs_poll(cookie, events, td));
}

static int
zbpf_kqfilter(struct cdev *dev __unused, struct knote *kn)
{
	void *cookie;
	int error;

	error = devfs_get_cdevpriv(&cookie);
	if (error != 0)
		return (error);
	return (zbpf_rs_kqfilter(cookie, kn));
}

/* ---------------------------------------------------------------------- */
/* Taps: if_input and if_transmit wrappers                                */

/*
 * One slot per interface ever tapped. A slot keeps the interface's original
 * functions for the module's lifetime, so that a wrapper a driver entered
 * just before the pointers were restored can still pass the packet on.
 */
#define ZBPF_MAX_HOOKS 256

struct zbpf_hook {
	struct ifnet *ifp;
	if_input_fn_t input;
	if_transmit_fn_t transmit;
	void *cookie;
	u_int active;
};

static struct zbpf_hook zbpf_hooks[ZBPF_MAX_HOOKS];
static struct mtx zbpf_hooks_mtx;

static struct zbpf_hook *
zbpf_hook_find(struct ifnet *ifp)
{
	int i;

	for (i = 0; i < ZBPF_MAX_HOOKS; i++) {
		if (atomic_load_ptr(&zbpf_hooks[i].ifp) == ifp)
			return (&zbpf_hooks[i]);
	}
	return (NULL);
}

static void
zbpf_input(struct ifnet *ifp, struct mbuf *m)
{
	struct epoch_tracker et;
	struct zbpf_hook *h;
	struct mbuf *n;
	if_input_fn_t input;

	NET_EPOCH_ENTER(et);
	h = zbpf_hook_find(ifp);
	KASSERT(h != NULL, ("zbpf: input on an interface never hooked"));
	if (atomic_load_acq_int(&h->active)) {
		for (n = m; n != NULL; n = n->m_nextpkt)
			zbpf_rs_tap(h->cookie, ifp, n, 1);
	}
	input = h->input;
	NET_EPOCH_EXIT(et);
	input(ifp, m);
}

static int
zbpf_transmit(struct ifnet *ifp, struct mbuf *m)
{
	struct epoch_tracker et;
	struct zbpf_hook *h;
	if_transmit_fn_t transmit;

	NET_EPOCH_ENTER(et);
	h = zbpf_hook_find(ifp);
	KASSERT(h != NULL, ("zbpf: transmit on an interface never hooked"));
	if (atomic_load_acq_int(&h->active))
		zbpf_rs_tap(h->cookie, ifp, m, 0);
	transmit = h->transmit;
	NET_EPOCH_EXIT(et);
	return (transmit(ifp, m));
}

int
zbpf_kpi_tap_install(struct ifnet *ifp, void *cookie)
{
	struct zbpf_hook *h;
	int i;

	mtx_lock(&zbpf_hooks_mtx);
	h = zbpf_hook_find(ifp);
	if (h == NULL) {
		for (i = 0; i < ZBPF_MAX_HOOKS && h == NULL; i++)
			if (zbpf_hooks[i].ifp == NULL)
				h = &zbpf_hooks[i];
		if (h == NULL) {
			mtx_unlock(&zbpf_hooks_mtx);
			return (ENOSPC);
		}
	}
	if (!h->active) {
		h->input = if_getinputfn(ifp);
		h->transmit = if_gettransmitfn(ifp);
		h->cookie = cookie;
		atomic_store_rel_ptr((uintptr_t *)&h->ifp, (uintptr_t)ifp);
		atomic_store_rel_int(&h->active, 1);
		if_setinputfn(ifp, zbpf_input);
		if_settransmitfn(ifp, zbpf_transmit);
	}
	mtx_unlock(&zbpf_hooks_mtx);
	return (0);
}

void
zbpf_kpi_tap_remove(struct ifnet *ifp)
{
	struct zbpf_hook *h;

	mtx_lock(&zbpf_hooks_mtx);
	h = zbpf_hook_find(ifp);
	if (h != NULL && h->active) {
		if_setinputfn(ifp, h->input);
		if_settransmitfn(ifp, h->transmit);
		atomic_store_rel_int(&h->active, 0);
	}
	mtx_unlock(&zbpf_hooks_mtx);
	NET_EPOCH_WAIT();
}

/* ---------------------------------------------------------------------- */
/* Interface departure                                                    */

static eventhandler_tag zbpf_departure_tag;

static void
zbpf_ifnet_departure(void *arg __unused, struct ifnet *ifp)
{
	zbpf_rs_ifnet_departure(ifp);
}

/* ---------------------------------------------------------------------- */
/* Sysctls: net.bpf.* (replace mode) or net.zbpf.* (side by side)         */

static struct sysctl_ctx_list zbpf_sysctl_ctx;

static int
zbpf_sysctl_knob(SYSCTL_HANDLER_ARGS)
{
	int error, value;

	value = zbpf_rs_sysctl_get((int)arg2);
	error = sysctl_handle_int(oidp, &value, 0, req);
	if (error != 0 || req->newptr == NULL)
		return (error);
	return (zbpf_rs_sysctl_set((int)arg2, value));
}

static int
zbpf_sysctl_stats(SYSCTL_HANDLER_ARGS)
{
	uint8_t *buf;
	size_t needed;
	int error;

	error = priv_check(req->td, PRIV_NET_BPF);
	if (error != 0)
		return (error);
	if (req->newptr != NULL) {
		buf = malloc(req->newlen, M_TEMP, M_WAITOK);
		error = SYSCTL_IN(req, buf, req->newlen);
		if (error == 0)
			error = zbpf_rs_stats_write(buf, req->newlen);
		free(buf, M_TEMP);
		return (error);
	}
	error = zbpf_rs_stats(NULL, 0, &needed);
	if (error != 0 || req->oldptr == NULL)
		return (error != 0 ? error : SYSCTL_OUT(req, NULL, needed));
	buf = malloc(needed == 0 ? 1 : needed, M_TEMP, M_WAITOK | M_ZERO);
	error = zbpf_rs_stats(buf, needed, &needed);
	if (error == 0)
		error = SYSCTL_OUT(req, buf, needed);
	free(buf, M_TEMP);
	return (error);
}

static void
zbpf_sysctls_create(const char *node_name)
{
	struct sysctl_oid *node;
	struct sysctl_oid_list *children;

	sysctl_ctx_init(&zbpf_sysctl_ctx);
	node = SYSCTL_ADD_NODE(&zbpf_sysctl_ctx, SYSCTL_STATIC_CHILDREN(_net),
	    OID_AUTO, node_name, CTLFLAG_RW | CTLFLAG_MPSAFE, NULL,
	    "zbpf packet capture");
	children = SYSCTL_CHILDREN(node);
	SYSCTL_ADD_PROC(&zbpf_sysctl_ctx, children, OID_AUTO, "bufsize",
	    CTLTYPE_INT | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL,
	    ZBPF_SYSCTL_BUFSIZE, zbpf_sysctl_knob, "I",
	    "Default buffer size of new descriptors");
	SYSCTL_ADD_PROC(&zbpf_sysctl_ctx, children, OID_AUTO, "maxbufsize",
	    CTLTYPE_INT | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL,
	    ZBPF_SYSCTL_MAXBUFSIZE, zbpf_sysctl_knob, "I",
	    "Largest buffer size BIOCSBLEN grants");
	SYSCTL_ADD_PROC(&zbpf_sysctl_ctx, children, OID_AUTO, "maxinsns",
	    CTLTYPE_INT | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL,
	    ZBPF_SYSCTL_MAXINSNS, zbpf_sysctl_knob, "I",
	    "Longest filter program accepted");
	SYSCTL_ADD_PROC(&zbpf_sysctl_ctx, children, OID_AUTO,
	    "zerocopy_enable", CTLTYPE_INT | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL,
	    ZBPF_SYSCTL_ZEROCOPY_ENABLE, zbpf_sysctl_knob, "I",
	    "Allow zero-copy buffer sessions");
	SYSCTL_ADD_PROC(&zbpf_sysctl_ctx, children, OID_AUTO,
	    "optimize_writers", CTLTYPE_INT | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL,
	    ZBPF_SYSCTL_OPTIMIZE_WRITERS, zbpf_sysctl_knob, "I",
	    "New descriptors receive nothing until a filter is set");
	SYSCTL_ADD_PROC(&zbpf_sysctl_ctx, children, OID_AUTO, "jit_enable",
	    CTLTYPE_INT | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL,
	    ZBPF_SYSCTL_JIT_ENABLE, zbpf_sysctl_knob, "I",
	    "Compile new filters to native code");
	SYSCTL_ADD_PROC(&zbpf_sysctl_ctx, children, OID_AUTO, "stats",
	    CTLTYPE_OPAQUE | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL, 0,
	    zbpf_sysctl_stats, "S,xbpf_d", "Descriptor statistics");
}

/* ---------------------------------------------------------------------- */
/* Module events                                                          */

/* Loader tunable: 1 forces /dev/bpf, 0 forces /dev/zbpf, unset chooses. */
#define ZBPF_TUNABLE "net.zbpf.replace_bpf"

static int
zbpf_name_taken(const char *name)
{
	struct make_dev_args args;
	struct cdev *probe;
	int error;

	make_dev_args_init(&args);
	args.mda_flags = MAKEDEV_CHECKNAME | MAKEDEV_WAITOK;
	args.mda_devsw = &zbpf_cdevsw;
	args.mda_uid = UID_ROOT;
	args.mda_gid = GID_WHEEL;
	args.mda_mode = 0600;
	error = make_dev_s(&args, &probe, "%s", name);
	if (error == 0)
		destroy_dev(probe);
	return (error == EEXIST);
}

static int
zbpf_sysctl_taken(const char *name)
{
	int value;
	size_t len = sizeof(value);

	return (kernel_sysctlbyname(curthread, __DECONST(char *, name),
	    &value, &len, NULL, 0, NULL, 0) == 0);
}

static int
zbpf_load(void)
{
	struct make_dev_args args;
	const char *name;
	int error, replace, tunable = -1;

	mtx_init(&zbpf_hooks_mtx, "zbpf hooks", NULL, MTX_DEF);
	error = zbpf_rs_load();
	if (error != 0)
		return (error);
	TUNABLE_INT_FETCH(ZBPF_TUNABLE, &tunable);
	replace = zbpf_rs_choose_replace(zbpf_name_taken("bpf"),
	    zbpf_sysctl_taken("net.bpf.maxinsns"), tunable);
	name = replace ? "bpf" : "zbpf";

	make_dev_args_init(&args);
	args.mda_flags = MAKEDEV_CHECKNAME | MAKEDEV_WAITOK;
	args.mda_devsw = &zbpf_cdevsw;
	args.mda_uid = UID_ROOT;
	args.mda_gid = GID_WHEEL;
	args.mda_mode = 0600;
	error = make_dev_s(&args, &zbpf_cdev, "%s", name);
	if (error != 0) {
		zbpf_rs_unload();
		return (error);
	}
	if (replace)
		make_dev_alias(zbpf_cdev, "bpf0");
	zbpf_sysctls_create(name);
	zbpf_departure_tag = EVENTHANDLER_REGISTER(ifnet_departure_event,
	    zbpf_ifnet_departure, NULL, EVENTHANDLER_PRI_ANY);
	printf("zbpf: /dev/%s and net.%s ready\n", name, name);
	return (0);
}

static int
zbpf_unload(void)
{
	int i, error;

	error = zbpf_rs_quiesce();
	if (error != 0)
		return (error);
	destroy_dev(zbpf_cdev);
	EVENTHANDLER_DEREGISTER(ifnet_departure_event, zbpf_departure_tag);
	sysctl_ctx_free(&zbpf_sysctl_ctx);
	for (i = 0; i < ZBPF_MAX_HOOKS; i++)
		if (zbpf_hooks[i].ifp != NULL && zbpf_hooks[i].active)
			zbpf_kpi_tap_remove(zbpf_hooks[i].ifp);
	NET_EPOCH_WAIT();
	/* Let a wrapper entered just before its pointer was restored return. */
	pause("zbpfunl", hz / 10);
	zbpf_rs_unload();
	mtx_destroy(&zbpf_hooks_mtx);
	return (0);
}

static int
zbpf_modevent(module_t mod __unused, int type, void *data __unused)
{
	switch (type) {
	case MOD_LOAD:
		return (zbpf_load());
	case MOD_QUIESCE:
		return (zbpf_rs_quiesce());
	case MOD_UNLOAD:
		return (zbpf_unload());
	case MOD_SHUTDOWN:
		return (0);
	default:
		return (EOPNOTSUPP);
	}
}

DEV_MODULE(zbpf, zbpf_modevent, NULL);
MODULE_VERSION(zbpf, 1);

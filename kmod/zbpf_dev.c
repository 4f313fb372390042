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
#include <sys/sx.h>
#include <sys/time.h>
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
#include <net/bpf.h>
#include <net/bpfdesc.h>

#include "zbpf_kpi.h"

MALLOC_DECLARE(M_ZBPF);

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
 * A hook is zbpf's wrapper on one interface: the functions it replaced and
 * the tap (a Rust cookie) its packets go to, NULL while nobody listens.
 * Hooks are found by interface index in a two-level table, so the wrappers
 * find theirs in two loads. The table and the hooks change under
 * zbpf_hooks_sx; the wrappers read them inside the network epoch.
 *
 * A hook whose functions are no longer the interface's (another module,
 * netmap for one, wrapped them after zbpf) cannot be undone without
 * breaking that module: it stays, passing packets on, until the interface
 * leaves or the functions are zbpf's again. So does a hook on an
 * interface that calls if_input outside the epoch, where no wait proves
 * that nobody is about to enter the wrapper (Rust asks for it with `keep`).
 * Unloading is refused while any hook remains.
 *
 * Why not the link-layer pfil(9) head, which stacks cleanly: it runs in
 * ether_demux, after lagg, vlan and bridge took their frames and only for
 * frames not marked M_PROMISC, and on output before the driver, so it
 * misses what bpf shows (promiscuous traffic, port traffic) and sees
 * frames a firewall then drops; bpf taps before all of that.
 */
#define ZBPF_HOOK_PAGE 256
#define ZBPF_HOOK_PAGES 256	/* if_index is below 65536 */

struct zbpf_hook {
	struct ifnet *ifp;
	if_input_fn_t input;
	if_transmit_fn_t transmit;
	void *tap;
	int kept;
};

static struct zbpf_hook **zbpf_hook_pages[ZBPF_HOOK_PAGES];
static struct sx zbpf_hooks_sx;

static struct zbpf_hook **
zbpf_hook_slot(struct ifnet *ifp)
{
	struct zbpf_hook **page;
	u_int idx = (u_int)if_getindex(ifp);

	if (idx >= ZBPF_HOOK_PAGE * ZBPF_HOOK_PAGES)
		return (NULL);
	page = atomic_load_ptr(&zbpf_hook_pages[idx / ZBPF_HOOK_PAGE]);
	return (page == NULL ? NULL : &page[idx % ZBPF_HOOK_PAGE]);
}

static struct zbpf_hook *
zbpf_hook_find(struct ifnet *ifp)
{
	struct zbpf_hook **slot, *h;

	slot = zbpf_hook_slot(ifp);
	if (slot == NULL)
		return (NULL);
	h = atomic_load_ptr(slot);
	return (h != NULL && h->ifp == ifp ? h : NULL);
}

/* One packet as zbpf_rs_tap takes it. */
static __always_inline void
zbpf_describe(struct mbuf *m, int inbound, struct zbpf_packet *pkt)
{
	struct m_tag *tag;
	struct timespec ts;
	struct bintime bt;
	const struct mbuf *n;

	pkt->data = mtod(m, const uint8_t *);
	pkt->data_len = m->m_len < 0 ? 0 : (uint32_t)m->m_len;
	pkt->next = m->m_next;
	pkt->flags = inbound ? ZBPF_PKT_INBOUND : 0;
	pkt->vlan_tag = 0;
	if ((m->m_flags & M_PKTHDR) == 0) {
		pkt->len = 0;
		for (n = m; n != NULL; n = n->m_next)
			pkt->len += n->m_len < 0 ? 0 : (uint32_t)n->m_len;
		return;
	}
	pkt->len = m->m_pkthdr.len < 0 ? 0 : (uint32_t)m->m_pkthdr.len;
	if (m->m_flags & M_PROMISC)
		pkt->flags |= ZBPF_PKT_PROMISC;
	if (m->m_pkthdr.rcvif != NULL)
		pkt->flags |= ZBPF_PKT_RCVIF;
	if (m->m_flags & M_VLANTAG) {
		pkt->flags |= ZBPF_PKT_VLANTAG;
		pkt->vlan_tag = m->m_pkthdr.ether_vtag;
	}
	if (m->m_flags & M_TSTMP) {
		/* rcv_tstmp is wall-clock nanoseconds. */
		mbuf_tstmp2timespec(m, &ts);
		timespec2bintime(&ts, &bt);
		pkt->flags |= ZBPF_PKT_TSTAMP_WALL;
	} else if (!SLIST_EMPTY(&m->m_pkthdr.tags) && (tag = m_tag_locate(m,
	    MTAG_BPF, MTAG_BPF_TIMESTAMP, NULL)) != NULL) {
		bt = *(struct bintime *)(tag + 1);
		pkt->flags |= ZBPF_PKT_TSTAMP_UPTIME;
	} else
		return;
	pkt->tstamp.sec = bt.sec;
	pkt->tstamp.frac = bt.frac;
}

/*
 * Offers a received m_nextpkt list (a driver's batch, or one packet) to
 * the tap, ZBPF_TAP_BATCH packets per call, so that each reader stores a
 * call's packets under one hold of its lock.
 */
static void
zbpf_tap_received(void *tap, struct mbuf *m)
{
	struct zbpf_packet pkts[ZBPF_TAP_BATCH];
	struct mbuf *batch[ZBPF_TAP_BATCH];
	uint32_t clear, i, n;

	while (m != NULL) {
		for (n = 0; m != NULL && n < ZBPF_TAP_BATCH; m = m->m_nextpkt) {
			zbpf_describe(m, 1, &pkts[n]);
			batch[n++] = m;
		}
		clear = zbpf_rs_tap(tap, pkts, n);
		for (i = 0; i < n; i++) {
			if ((clear & (1u << i)) != 0)
				batch[i]->m_flags &= ~M_PROMISC;
		}
	}
}

static void
zbpf_input(struct ifnet *ifp, struct mbuf *m)
{
	struct epoch_tracker et;
	struct zbpf_hook *h;
	if_input_fn_t input;
	void *tap;

	NET_EPOCH_ENTER(et);
	h = zbpf_hook_find(ifp);
	if (h == NULL) {
		/* The interface left and its hook with it. */
		NET_EPOCH_EXIT(et);
		m_freem(m);
		return;
	}
	tap = (void *)atomic_load_acq_ptr((uintptr_t *)&h->tap);
	if (tap != NULL)
		zbpf_tap_received((void *)tap, m);
	input = h->input;
	NET_EPOCH_EXIT(et);
	input(ifp, m);
}

static int
zbpf_transmit(struct ifnet *ifp, struct mbuf *m)
{
	struct zbpf_packet pkt;
	struct epoch_tracker et;
	struct zbpf_hook *h;
	if_transmit_fn_t transmit;
	void *tap;

	NET_EPOCH_ENTER(et);
	h = zbpf_hook_find(ifp);
	if (h == NULL) {
		NET_EPOCH_EXIT(et);
		m_freem(m);
		return (ENXIO);
	}
	tap = (void *)atomic_load_acq_ptr((uintptr_t *)&h->tap);
	if (tap != NULL) {
		zbpf_describe(m, 0, &pkt);
		if (zbpf_rs_tap(tap, &pkt, 1) != 0)
			m->m_flags &= ~M_PROMISC;
	}
	transmit = h->transmit;
	NET_EPOCH_EXIT(et);
	return (transmit(ifp, m));
}

/* Whether the interface's functions are zbpf's wrappers. */
static int
zbpf_hook_on_top(struct zbpf_hook *h)
{
	return (if_getinputfn(h->ifp) == zbpf_input &&
	    if_gettransmitfn(h->ifp) == zbpf_transmit);
}

/*
 * Takes the hook out of the table and frees it, its wrappers no longer
 * reachable. Hooks sx held; sleeps.
 */
static void
zbpf_hook_free(struct zbpf_hook **slot)
{
	struct zbpf_hook *h = *slot;

	/* A caller that read the wrapper's address is inside the epoch. */
	NET_EPOCH_WAIT();
	atomic_store_rel_ptr((uintptr_t *)slot, (uintptr_t)NULL);
	NET_EPOCH_WAIT();
	free(h, M_ZBPF);
}

/*
 * Gives the interface its functions back if zbpf's wrappers are still on
 * top (else they stay another module's business), then frees the hook.
 */
static void
zbpf_hook_undo(struct zbpf_hook **slot)
{
	struct zbpf_hook *h = *slot;

	if (zbpf_hook_on_top(h)) {
		if_setinputfn(h->ifp, h->input);
		if_settransmitfn(h->ifp, h->transmit);
	}
	zbpf_hook_free(slot);
}

int
zbpf_kpi_tap_install(struct ifnet *ifp, void *tap)
{
	struct zbpf_hook **page, **slot, *h;
	u_int idx = (u_int)if_getindex(ifp);

	if (idx >= ZBPF_HOOK_PAGE * ZBPF_HOOK_PAGES)
		return (ENOSPC);
	sx_xlock(&zbpf_hooks_sx);
	if (zbpf_hook_pages[idx / ZBPF_HOOK_PAGE] == NULL) {
		page = malloc(ZBPF_HOOK_PAGE * sizeof(*page), M_ZBPF,
		    M_WAITOK | M_ZERO);
		atomic_store_rel_ptr(
		    (uintptr_t *)&zbpf_hook_pages[idx / ZBPF_HOOK_PAGE],
		    (uintptr_t)page);
	}
	slot = zbpf_hook_slot(ifp);
	h = *slot;
	if (h != NULL && h->ifp != ifp) {
		/* A departed interface's index, reused: its hook is stale. */
		zbpf_hook_free(slot);
		h = NULL;
	}
	if (h == NULL) {
		h = malloc(sizeof(*h), M_ZBPF, M_WAITOK | M_ZERO);
		h->ifp = ifp;
		atomic_store_rel_ptr((uintptr_t *)slot, (uintptr_t)h);
	}
	/* A hook that stayed is still in the interface's chain. */
	if (h->input == NULL) {
		h->input = if_getinputfn(ifp);
		h->transmit = if_gettransmitfn(ifp);
		atomic_thread_fence_rel();
		if_setinputfn(ifp, zbpf_input);
		if_settransmitfn(ifp, zbpf_transmit);
	}
	atomic_store_rel_ptr((uintptr_t *)&h->tap, (uintptr_t)tap);
	sx_xunlock(&zbpf_hooks_sx);
	return (0);
}

int
zbpf_kpi_tap_remove(struct ifnet *ifp, int keep)
{
	struct zbpf_hook *h;
	int error = 0;

	sx_xlock(&zbpf_hooks_sx);
	h = zbpf_hook_find(ifp);
	if (h != NULL) {
		atomic_store_rel_ptr((uintptr_t *)&h->tap, (uintptr_t)NULL);
		if (!zbpf_hook_on_top(h))
			error = EBUSY;
		else if (keep)
			h->kept = 1;
		else
			zbpf_hook_undo(zbpf_hook_slot(ifp));
	}
	sx_xunlock(&zbpf_hooks_sx);
	/* No wrapper still delivers to the tap. */
	NET_EPOCH_WAIT();
	return (error);
}

void
zbpf_kpi_tap_forget(struct ifnet *ifp)
{
	sx_xlock(&zbpf_hooks_sx);
	if (zbpf_hook_find(ifp) != NULL)
		zbpf_hook_undo(zbpf_hook_slot(ifp));
	sx_xunlock(&zbpf_hooks_sx);
}

int
zbpf_kpi_hooks_settle(void)
{
	struct zbpf_hook **page, *h;
	int i, j, held = 0;

	sx_xlock(&zbpf_hooks_sx);
	for (i = 0; i < ZBPF_HOOK_PAGES; i++) {
		page = zbpf_hook_pages[i];
		for (j = 0; page != NULL && j < ZBPF_HOOK_PAGE; j++) {
			h = page[j];
			if (h == NULL)
				continue;
			if (h->tap == NULL && !h->kept && zbpf_hook_on_top(h))
				zbpf_hook_undo(&page[j]);
			else
				held++;
		}
	}
	sx_xunlock(&zbpf_hooks_sx);
	return (held);
}

/* At unload, with no hook left: the table itself. */
static void
zbpf_hooks_fini(void)
{
	int i;

	for (i = 0; i < ZBPF_HOOK_PAGES; i++) {
		free(zbpf_hook_pages[i], M_ZBPF);
		zbpf_hook_pages[i] = NULL;
	}
	sx_destroy(&zbpf_hooks_sx);
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
		/* Only a whole record may be written, as bpf has it. */
		if (req->newlen != sizeof(struct xbpf_d))
			return (EINVAL);
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
zbpf_sysctl_taken(const char *name)
{
	int value;
	size_t len = sizeof(value);

	return (kernel_sysctlbyname(curthread, __DECONST(char *, name),
	    &value, &len, NULL, 0, NULL, 0) == 0);
}

static int
zbpf_make_dev(const char *name)
{
	struct make_dev_args args;

	make_dev_args_init(&args);
	args.mda_flags = MAKEDEV_CHECKNAME | MAKEDEV_WAITOK;
	args.mda_devsw = &zbpf_cdevsw;
	args.mda_uid = UID_ROOT;
	args.mda_gid = GID_WHEEL;
	args.mda_mode = 0600;
	return (make_dev_s(&args, &zbpf_cdev, "%s", name));
}

/*
 * The device comes last: once it exists a descriptor can attach, and the
 * departure handler must already be there to see its interface leave.
 */
static int
zbpf_load(void)
{
	const char *name;
	int bpf_sysctl, error, replace, tunable = -1;

	sx_init(&zbpf_hooks_sx, "zbpf hooks");
	error = zbpf_rs_load();
	if (error != 0) {
		sx_destroy(&zbpf_hooks_sx);
		return (error);
	}
	zbpf_departure_tag = EVENTHANDLER_REGISTER(ifnet_departure_event,
	    zbpf_ifnet_departure, NULL, EVENTHANDLER_PRI_ANY);
	TUNABLE_INT_FETCH(ZBPF_TUNABLE, &tunable);
	bpf_sysctl = zbpf_sysctl_taken("net.bpf.maxinsns");
	replace = zbpf_rs_choose_replace(0, bpf_sysctl, tunable);
	error = zbpf_make_dev(replace ? "bpf" : "zbpf");
	if (error == EEXIST && replace &&
	    !zbpf_rs_choose_replace(1, bpf_sysctl, tunable)) {
		replace = 0;
		error = zbpf_make_dev("zbpf");
	}
	if (error != 0) {
		zbpf_cdev = NULL;
		EVENTHANDLER_DEREGISTER(ifnet_departure_event,
		    zbpf_departure_tag);
		zbpf_rs_unload();
		sx_destroy(&zbpf_hooks_sx);
		return (error);
	}
	name = replace ? "bpf" : "zbpf";
	if (replace)
		make_dev_alias(zbpf_cdev, "bpf0");
	zbpf_sysctls_create(name);
	printf("zbpf: /dev/%s and net.%s ready\n", name, name);
	return (0);
}

static int
zbpf_unload(void)
{
	int error;

	/* A load that failed left nothing behind. */
	if (zbpf_cdev == NULL)
		return (0);
	error = zbpf_rs_quiesce(1);
	if (error != 0)
		return (error);
	destroy_dev(zbpf_cdev);
	zbpf_cdev = NULL;
	sysctl_ctx_free(&zbpf_sysctl_ctx);
	EVENTHANDLER_DEREGISTER(ifnet_departure_event, zbpf_departure_tag);
	zbpf_rs_unload();
	zbpf_hooks_fini();
	return (0);
}

static int
zbpf_modevent(module_t mod __unused, int type, void *data __unused)
{
	switch (type) {
	case MOD_LOAD:
		return (zbpf_load());
	case MOD_QUIESCE:
		return (zbpf_cdev == NULL ? 0 : zbpf_rs_quiesce(0));
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

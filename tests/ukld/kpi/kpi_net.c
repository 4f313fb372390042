/*
 * kpi_net.c: network interfaces and event handlers, as the module sees
 * them: FreeBSD's struct ifnet and its if_t accessors, ifunit_ref, if_ref
 * and if_rele, ifpromisc, if_input; eventhandler(9) lists; and the driver
 * behind every emulated interface, an Ethernet that can be joined to
 * another back to back as epair(4) does.
 *
 * The driver's functions stand in for the stack's: its if_input for
 * ether_input (the frame is counted and freed), its if_output for
 * ether_output on the path bpf(4) writes take (the link header in
 * ro_prepend), its if_transmit for epair_transmit (counted as sent, then
 * handed to the peer's current if_input).
 *
 * An interface leaves as if_detach has it leave: unlinked (ifunit_ref no
 * longer finds it) and IFF_DYING, the network epoch waited for, ifnet_departure_event,
 * then its ioctl and output are dead, as if_dead makes them, and the
 * creation reference goes. Its memory is kept after the last reference
 * went, so that the end-of-run check can still tell whether the module
 * left its if_input and if_transmit as it found them, and see writes made
 * after that.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/proc.h>
#include <sys/eventhandler.h>
#include <sys/epoch.h>
#include <sys/mbuf.h>
#include <sys/socket.h>
#include <sys/sockio.h>
#include <machine/atomic.h>

#include <net/if.h>
#include <net/if_var.h>
#include <net/if_private.h>
#include <net/if_dl.h>
#include <net/if_types.h>
#include <net/ethernet.h>
#include <net/route.h>
#include <net/vnet.h>
#include <net/bpf.h>
#include <net/if_vlan_var.h>

#include "ukld.h"
#include "kpi_net.h"

/* Bytes of the last transmitted frame kept for ukk_if_last_sent. */
#define	UKK_LASTMAX	2048

struct ukk_if {
	struct ifnet ifp;		/* first: if_t is a struct ukk_if * */
	struct ifaddr ifa;		/* the link-level address, if_addr */
	struct sockaddr_dl sdl;
	struct ukk_if *peer;		/* epair: the other end, or NULL */
	TAILQ_ENTRY(ukk_if) link;	/* every interface ever created */
	volatile u_int sent;		/* frames transmitted */
	volatile u_int received;	/* frames input */
	/* The last frame transmitted (ukk_if_last_sent), under ukk_net_mtx. */
	u_char last[UKK_LASTMAX];
	long last_len;
	int last_flags, last_pcp;
	int attached;
	char dname[IFNAMSIZ];		/* the driver's name, if_dname */
	/* ukk_if_stack: another module's wrappers on top, and what they
	 * call; frames they passed on. */
	if_input_fn_t stk_input;
	if_transmit_fn_t stk_transmit;
	volatile u_int stk_frames;
	/* When the last reference went: the functions left in place. */
	int released;
	if_input_fn_t rel_input;
	if_transmit_fn_t rel_transmit;
	/* ukk_if_input_burst: the packets of the list it hands up (0: none),
	 * which the stack above the driver counts and leaves alone, so that
	 * the list can be handed up again; counted without a walk, which
	 * would be the emulation's cost, not the module's. */
	u_int bench_keep;
};

#define	UKK_IF(ifp)	((struct ukk_if *)(ifp))


/* Larger than any frame of any link. */
#define	UKK_MAXFRAME	65535

static struct mtx ukk_net_mtx;		/* the interface list, peers, last */
static TAILQ_HEAD(, ukk_if) ukk_ifs = TAILQ_HEAD_INITIALIZER(ukk_ifs);
static u_int ukk_if_units;		/* interfaces created: the MACs */

static struct mtx ukk_evh_mtx;		/* the list of event handler lists */
static TAILQ_HEAD(, eventhandler_list) ukk_evh_lists =
    TAILQ_HEAD_INITIALIZER(ukk_evh_lists);

static volatile u_int ukk_net_state;	/* 0, 1 initializing, 2 ready */

static const u_char ukk_etherbroadcast[ETHER_ADDR_LEN] =
    { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* The locks, on first use from whichever thread comes first. */
static void
ukk_net_init(void)
{
	if (atomic_load_acq_int(&ukk_net_state) == 2)
		return;
	if (atomic_cmpset_int(&ukk_net_state, 0, 1)) {
		mtx_init(&ukk_net_mtx, "ukk ifnet", NULL, MTX_DEF);
		mtx_init(&ukk_evh_mtx, "eventhandler", NULL, MTX_DEF);
		atomic_store_rel_int(&ukk_net_state, 2);
		return;
	}
	while (atomic_load_acq_int(&ukk_net_state) != 2)
		uh_yield();
}

/* Interface names compare over at most IFNAMSIZ bytes. */
static int
ukk_name_eq(const char *a, const char *b)
{
	int i;

	for (i = 0; i < IFNAMSIZ; i++) {
		if (a[i] != b[i])
			return (0);
		if (a[i] == '\0')
			return (1);
	}
	return (1);
}

static size_t
ukk_strlen(const char *s)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return (n);
}

/* An attached interface by name (ukk_net_mtx held). */
static struct ukk_if *
ukk_if_find_locked(const char *name)
{
	struct ukk_if *ui;

	mtx_assert(&ukk_net_mtx, MA_OWNED);
	TAILQ_FOREACH(ui, &ukk_ifs, link)
		if (ui->attached && ukk_name_eq(ui->ifp.if_xname, name))
			return (ui);
	return (NULL);
}

/* ---------------------------------------------------------------------- */
/* The driver                                                             */

/*
 * ether_input: packets (m_nextpkt) reach the stack, which drops them. An
 * interface without IFF_KNOWSEPOCH may be called outside the network
 * epoch: ether_input enters it.
 */
static void
ukk_drv_input(struct ifnet *ifp, struct mbuf *m)
{
	struct ukk_if *ui = UKK_IF(ifp);
	struct mbuf *next;

	if (ui->bench_keep != 0) {
		atomic_add_int(&ui->received, ui->bench_keep);
		return;
	}
	for (; m != NULL; m = next) {
		next = m->m_nextpkt;
		m->m_nextpkt = NULL;
		if ((m->m_flags & M_PKTHDR) == 0)
			uh_violation("%s: if_input of an mbuf without "
			    "M_PKTHDR", ifp->if_xname);
		else if (m->m_pkthdr.rcvif != ifp)
			uh_violation("%s: if_input of a packet whose rcvif "
			    "is another interface", ifp->if_xname);
		atomic_add_int(&ui->received, 1);
		m_freem(m);
	}
}

/* Keeps what the wire would show of a transmitted frame. */
static void
ukk_drv_record(struct ukk_if *ui, struct mbuf *m)
{
	struct m_tag *t;
	struct mbuf *n;
	long off = 0;
	int len;

	mtx_lock(&ukk_net_mtx);
	for (n = m; n != NULL; n = n->m_next) {
		len = (int)MIN((long)n->m_len, UKK_LASTMAX - off);
		if (len > 0)
			memcpy(ui->last + off, mtod(n, u_char *), len);
		off += len;
	}
	ui->last_len = m->m_pkthdr.len;
	ui->last_flags = ((m->m_flags & M_BCAST) ? UKK_SENT_BCAST : 0) |
	    ((m->m_flags & M_MCAST) ? UKK_SENT_MCAST : 0);
	t = m_tag_locate(m, MTAG_8021Q, MTAG_8021Q_PCP_OUT, NULL);
	ui->last_pcp = (t != NULL) ? *(uint8_t *)(t + 1) : -1;
	mtx_unlock(&ukk_net_mtx);
}

/* epair_transmit: the same mbuf arrives on the peer, as received there. */
static int
ukk_drv_transmit(struct ifnet *ifp, struct mbuf *m)
{
	struct epoch_tracker et;
	struct ukk_if *ui = UKK_IF(ifp), *peer;
	struct ifnet *oifp;

	if (m == NULL)
		return (0);
	atomic_add_int(&ui->sent, 1);
	if ((m->m_flags & M_PKTHDR) == 0) {
		uh_violation("%s: if_transmit of an mbuf without M_PKTHDR",
		    ifp->if_xname);
		m_freem(m);
		return (0);
	}
	ukk_drv_record(ui, m);
	/* A peer leaves after an epoch wait: it stays valid in here. */
	NET_EPOCH_ENTER(et);
	peer = atomic_load_ptr(&ui->peer);
	if (peer == NULL) {
		NET_EPOCH_EXIT(et);
		m_freem(m);
		return (0);
	}
	oifp = &peer->ifp;
	/* epair_clear_mbuf and epair_menq. */
	m->m_flags &= ~M_VLANTAG;
	m->m_pkthdr.ether_vtag = 0;
	ukk_m_tag_delete_nonpersistent(m);
	m->m_pkthdr.rcvif = oifp;
	CURVNET_SET(oifp->if_vnet);
	oifp->if_input(oifp, m);
	CURVNET_RESTORE();
	NET_EPOCH_EXIT(et);
	return (0);
}

/*
 * ether_output for a frame whose link header comes in ro_prepend (bpf's
 * writes): prepended as given, then to the current if_transmit.
 */
static int
ukk_drv_output(struct ifnet *ifp, struct mbuf *m, const struct sockaddr *dst,
    struct route *ro)
{
	int hlen;

	if (ro == NULL || ro->ro_prepend == NULL) {
		/* ether_resolve_addr knows no other family here. */
		printf("%s: can't handle af%d\n", ifp->if_xname,
		    dst->sa_family);
		m_freem(m);
		return (EAFNOSUPPORT);
	}
	if ((ifp->if_flags & IFF_UP) == 0 ||
	    (ifp->if_drv_flags & IFF_DRV_RUNNING) == 0) {
		m_freem(m);
		return (ENETDOWN);
	}
	hlen = ro->ro_plen;
	m = ukk_m_prepend(m, hlen, M_NOWAIT);
	if (m == NULL)
		return (ENOBUFS);
	memcpy(mtod(m, char *), ro->ro_prepend, hlen);
	return (ifp->if_transmit(ifp, m));
}

static int
ukk_drv_ioctl(struct ifnet *ifp __unused, u_long cmd, caddr_t data __unused)
{
	return (cmd == SIOCSIFFLAGS ? 0 : EINVAL);
}

/* if_dead's replacements, once the interface has left. */
static int
ukk_dead_ioctl(struct ifnet *ifp __unused, u_long cmd __unused,
    caddr_t data __unused)
{
	return (ENXIO);
}

static int
ukk_dead_output(struct ifnet *ifp __unused, struct mbuf *m,
    const struct sockaddr *dst __unused, struct route *ro __unused)
{
	m_freem(m);
	return (ENXIO);
}

/* ---------------------------------------------------------------------- */
/* if_t accessors, references, lookup                                     */

int
if_getflags(const if_t ifp)
{
	return (ifp->if_flags);
}

int
if_gettype(const if_t ifp)
{
	return (ifp->if_type);
}

int
if_getindex(const if_t ifp)
{
	return (ifp->if_index);
}

const char *
if_getdname(const if_t ifp)
{
	return (ifp->if_dname);
}

int
if_getmtu(const if_t ifp)
{
	return (ifp->if_mtu);
}

uint8_t
if_getaddrlen(if_t ifp)
{
	return (ifp->if_addrlen);
}

char *
if_getlladdr(const if_t ifp)
{
	return (IF_LLADDR(ifp));
}

struct vnet *
if_getvnet(const if_t ifp)
{
	return (ifp->if_vnet);
}

const char *
if_name(if_t ifp)
{
	return (ifp->if_xname);
}

if_input_fn_t
if_getinputfn(if_t ifp)
{
	return (ifp->if_input);
}

void
if_setinputfn(if_t ifp, if_input_fn_t input)
{
	ifp->if_input = input;
}

if_transmit_fn_t
if_gettransmitfn(if_t ifp)
{
	return (ifp->if_transmit);
}

void
if_settransmitfn(if_t ifp, if_transmit_fn_t transmit)
{
	ifp->if_transmit = transmit;
}

void
if_input(if_t ifp, struct mbuf *m)
{
	ifp->if_input(ifp, m);
}

void
if_ref(if_t ifp)
{
	if (atomic_fetchadd_int(&ifp->if_refcount, 1) == 0)
		uh_violation("if_ref(%s): the interface was already freed",
		    ifp->if_xname);
}

/* The last reference went: from here on the interface is freed memory. */
static void
ukk_if_released(struct ukk_if *ui)
{
	if (ui->attached)
		uh_violation("%s: its last reference went while attached",
		    ui->ifp.if_xname);
	ui->rel_input = ui->ifp.if_input;
	ui->rel_transmit = ui->ifp.if_transmit;
	atomic_store_rel_int(&ui->released, 1);
}

void
if_rele(if_t ifp)
{
	u_int old;

	old = atomic_fetchadd_int(&ifp->if_refcount, -1);
	if (old == 0) {
		atomic_add_int(&ifp->if_refcount, 1);
		uh_violation("if_rele(%s): no reference left", ifp->if_xname);
	} else if (old == 1)
		ukk_if_released(UKK_IF(ifp));
}

if_t
ifunit_ref(const char *name)
{
	struct ukk_if *ui;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	if (ui != NULL)
		if_ref(&ui->ifp);
	mtx_unlock(&ukk_net_mtx);
	return (ui != NULL ? &ui->ifp : NULL);
}

/*
 * if_setflag: a reference-counted flag changes only on 0 -> 1 and 1 -> 0,
 * through the driver's SIOCSIFFLAGS; the count and flags are put back if
 * the driver refuses (a departed interface's ioctl says ENXIO).
 */
static int
ukk_if_setflag(struct ifnet *ifp, int flag, int pflag, int *refcount,
    int onswitch)
{
	struct ifreq ifr;
	int error, oldcount, oldflags;

	if (onswitch ? *refcount < 0 : *refcount <= 0) {
		uh_violation("%s: %s a reference count of %d for flag %#x",
		    ifp->if_xname, onswitch ? "incrementing" : "decrementing",
		    *refcount, flag);
		return (EINVAL);
	}
	if (ifp->if_flags & pflag) {
		*refcount += onswitch ? 1 : -1;
		return (0);
	}
	oldcount = *refcount;
	oldflags = ifp->if_flags;
	if (onswitch) {
		if ((*refcount)++ != 0)
			return (0);
		ifp->if_flags |= flag;
	} else {
		if (--(*refcount) != 0)
			return (0);
		ifp->if_flags &= ~flag;
	}
	bzero(&ifr, sizeof(ifr));
	ifr.ifr_flags = ifp->if_flags & 0xffff;
	ifr.ifr_flagshigh = ifp->if_flags >> 16;
	error = ifp->if_ioctl(ifp, SIOCSIFFLAGS, (caddr_t)&ifr);
	if (error != 0) {
		*refcount = oldcount;
		ifp->if_flags = oldflags;
	}
	return (error);
}

int
ifpromisc(if_t ifp, int pswitch)
{
	int error, oldflags;

	/* if_detach has unlinked it: its driver may be half torn down. */
	if (ifp->if_flags & IFF_DYING)
		uh_violation("%s: ifpromisc on a departing interface",
		    ifp->if_xname);
	/* A driver's SIOCSIFFLAGS may sleep. */
	ukk_may_sleep("ifpromisc", NULL);
	oldflags = ifp->if_flags;
	error = ukk_if_setflag(ifp, IFF_PROMISC, IFF_PPROMISC, &ifp->if_pcount,
	    pswitch);
	if (error == 0 && ((ifp->if_flags ^ oldflags) & IFF_PROMISC) != 0)
		printf("%s: promiscuous mode %s\n", ifp->if_xname,
		    (ifp->if_flags & IFF_PROMISC) ? "enabled" : "disabled");
	return (error);
}

/* ---------------------------------------------------------------------- */
/* Event handlers                                                         */

static struct eventhandler_list *
ukk_evh_find_locked(const char *name)
{
	struct eventhandler_list *list;
	int i;

	mtx_assert(&ukk_evh_mtx, MA_OWNED);
	TAILQ_FOREACH(list, &ukk_evh_lists, el_link) {
		for (i = 0; list->el_name[i] == name[i]; i++)
			if (name[i] == '\0')
				return (list);
	}
	return (NULL);
}

/* The list named `name`, locked; NULL if nobody ever registered on it. */
struct eventhandler_list *
eventhandler_find_list(const char *name)
{
	struct eventhandler_list *list;

	ukk_net_init();
	mtx_lock(&ukk_evh_mtx);
	list = ukk_evh_find_locked(name);
	if (list != NULL)
		EHL_LOCK(list);
	mtx_unlock(&ukk_evh_mtx);
	return (list);
}

eventhandler_tag
eventhandler_register(struct eventhandler_list *list, const char *name,
    void *func, void *arg, int priority)
{
	struct eventhandler_entry_generic {
		struct eventhandler_entry ee;
		void *func;
	} *eg;
	struct eventhandler_entry *ep;
	size_t len;

	/* FreeBSD allocates both with M_WAITOK. */
	ukk_may_sleep("eventhandler_register", NULL);
	ukk_net_init();
	if (list == NULL) {
		mtx_lock(&ukk_evh_mtx);
		list = ukk_evh_find_locked(name);
		if (list == NULL) {
			len = ukk_strlen(name) + 1;
			list = uh_alloc(sizeof(*list) + len, 0);
			list->el_name = (char *)(list + 1);
			memcpy(list->el_name, name, len);
			mtx_init(&list->el_lock, list->el_name,
			    "eventhandler list", MTX_DEF);
			TAILQ_INIT(&list->el_entries);
			TAILQ_INSERT_HEAD(&ukk_evh_lists, list, el_link);
		}
		mtx_unlock(&ukk_evh_mtx);
	}
	eg = uh_alloc(sizeof(*eg), 0);
	eg->func = func;
	eg->ee.ee_arg = arg;
	eg->ee.ee_priority = priority;

	/* After every live entry of the same or a higher priority value. */
	EHL_LOCK(list);
	TAILQ_FOREACH(ep, &list->el_entries, ee_link) {
		if (ep->ee_priority != EHE_DEAD_PRIORITY &&
		    eg->ee.ee_priority < ep->ee_priority) {
			TAILQ_INSERT_BEFORE(ep, &eg->ee, ee_link);
			break;
		}
	}
	if (ep == NULL)
		TAILQ_INSERT_TAIL(&list->el_entries, &eg->ee, ee_link);
	EHL_UNLOCK(list);
	return (&eg->ee);
}

/*
 * Takes the list locked (eventhandler_find_list) and unlocks it. An entry
 * is freed now if no invocation runs, else marked dead for the last
 * invocation to prune; either way the caller waits until no invocation
 * runs, so the handler is not running when this returns.
 */
void
eventhandler_deregister(struct eventhandler_list *list, eventhandler_tag tag)
{
	struct eventhandler_entry *ep;

	mtx_assert(&list->el_lock, MA_OWNED);
	if (tag != NULL) {
		if (list->el_runcount == 0) {
			TAILQ_REMOVE(&list->el_entries, tag, ee_link);
			uh_free(tag);
		} else
			tag->ee_priority = EHE_DEAD_PRIORITY;
	} else if (list->el_runcount == 0) {
		while ((ep = TAILQ_FIRST(&list->el_entries)) != NULL) {
			TAILQ_REMOVE(&list->el_entries, ep, ee_link);
			uh_free(ep);
		}
	} else {
		TAILQ_FOREACH(ep, &list->el_entries, ee_link)
			ep->ee_priority = EHE_DEAD_PRIORITY;
	}
	while (list->el_runcount > 0)
		mtx_sleep(list, &list->el_lock, 0, "evhrm", 0);
	EHL_UNLOCK(list);
}

/* Called by _EVENTHANDLER_INVOKE when the last invocation ends. */
void
eventhandler_prune_list(struct eventhandler_list *list)
{
	struct eventhandler_entry *ep, *next;
	int pruned = 0;

	mtx_assert(&list->el_lock, MA_OWNED);
	TAILQ_FOREACH_SAFE(ep, &list->el_entries, ee_link, next) {
		if (ep->ee_priority == EHE_DEAD_PRIORITY) {
			TAILQ_REMOVE(&list->el_entries, ep, ee_link);
			uh_free(ep);
			pruned++;
		}
	}
	if (pruned > 0)
		wakeup(list);
}

/* ---------------------------------------------------------------------- */
/* Another module's wrappers (ukk_if_stack)                               */

/* As netmap's generic mode: count, then call what was there before. */
static void
ukk_foreign_input(struct ifnet *ifp, struct mbuf *m)
{
	struct ukk_if *ui = UKK_IF(ifp);
	struct mbuf *n;

	for (n = m; n != NULL; n = n->m_nextpkt)
		atomic_add_int(&ui->stk_frames, 1);
	ui->stk_input(ifp, m);
}

static int
ukk_foreign_transmit(struct ifnet *ifp, struct mbuf *m)
{
	struct ukk_if *ui = UKK_IF(ifp);

	atomic_add_int(&ui->stk_frames, 1);
	return (ui->stk_transmit(ifp, m));
}

/* ---------------------------------------------------------------------- */
/* The harness's side                                                     */

static u_short
ukk_if_free_index_locked(void)
{
	struct ukk_if *ui;
	u_short idx;

	for (idx = 1;; idx++) {
		TAILQ_FOREACH(ui, &ukk_ifs, link)
			if (ui->attached && ui->ifp.if_index == idx)
				break;
		if (ui == NULL)
			return (idx);
	}
}

int
ukk_if_create(const char *name)
{
	return (ukk_if_create_ex(name, "ukldeth", IFT_ETHER, 0));
}

int
ukk_if_create_ex(const char *name, const char *dname, int type, int flags)
{
	struct ukk_if *ui;
	struct ifnet *ifp;
	size_t nlen, dlen;
	u_int unit;

	ukk_net_init();
	nlen = ukk_strlen(name);
	dlen = ukk_strlen(dname);
	if (nlen == 0 || nlen >= IFNAMSIZ || dlen == 0 || dlen >= IFNAMSIZ)
		return (EINVAL);
	ui = uh_alloc(sizeof(*ui), 0);
	ifp = &ui->ifp;
	memcpy(ifp->if_xname, name, nlen + 1);
	memcpy(ui->dname, dname, dlen + 1);
	ifp->if_dname = ui->dname;
	ifp->if_softc = ui;
	ifp->if_type = type;
	ifp->if_addrlen = ETHER_ADDR_LEN;
	ifp->if_hdrlen = ETHER_HDR_LEN;
	ifp->if_mtu = ETHERMTU;
	ifp->if_link_state = LINK_STATE_UP;
	ifp->if_flags = IFF_UP | IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST |
	    flags;
	ifp->if_drv_flags = IFF_DRV_RUNNING;
	ifp->if_refcount = 1;
	ifp->if_vnet = ifp->if_home_vnet = vnet0;
	ifp->if_pcp = IFNET_PCP_NONE;
	ifp->if_broadcastaddr = ukk_etherbroadcast;
	ifp->if_input = ukk_drv_input;
	ifp->if_output = ukk_drv_output;
	ifp->if_transmit = ukk_drv_transmit;
	ifp->if_ioctl = ukk_drv_ioctl;
	CK_STAILQ_INIT(&ifp->if_addrhead);
	CK_STAILQ_INIT(&ifp->if_multiaddrs);

	mtx_lock(&ukk_net_mtx);
	if (ukk_if_find_locked(name) != NULL) {
		mtx_unlock(&ukk_net_mtx);
		uh_free(ui);
		return (EEXIST);
	}
	unit = ++ukk_if_units;
	/* As ifindex_alloc: the lowest index no attached interface holds. */
	ifp->if_index = ukk_if_free_index_locked();
	/* The name and a locally administered MAC, 02:7a:6b:00:00:NN. */
	ui->sdl.sdl_len = sizeof(ui->sdl);
	ui->sdl.sdl_family = AF_LINK;
	ui->sdl.sdl_index = ifp->if_index;
	ui->sdl.sdl_type = type;
	ui->sdl.sdl_nlen = nlen;
	ui->sdl.sdl_alen = ETHER_ADDR_LEN;
	memcpy(ui->sdl.sdl_data, name, nlen);
	memcpy(LLADDR(&ui->sdl), "\x02\x7a\x6b\x00", 4);
	LLADDR(&ui->sdl)[4] = unit >> 8;
	LLADDR(&ui->sdl)[5] = unit;
	ui->ifa.ifa_addr = (struct sockaddr *)&ui->sdl;
	ui->ifa.ifa_ifp = ifp;
	ui->ifa.ifa_refcnt = 1;
	ifp->if_addr = &ui->ifa;
	CK_STAILQ_INSERT_HEAD(&ifp->if_addrhead, &ui->ifa, ifa_link);
	ui->attached = 1;
	TAILQ_INSERT_TAIL(&ukk_ifs, ui, link);
	mtx_unlock(&ukk_net_mtx);
	return (0);
}

int
ukk_if_pair(const char *a, const char *b)
{
	struct ukk_if *ua, *ub;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ua = ukk_if_find_locked(a);
	ub = ukk_if_find_locked(b);
	if (ua == NULL || ub == NULL || ua == ub) {
		mtx_unlock(&ukk_net_mtx);
		return (ua == ub && ua != NULL ? EINVAL : ENXIO);
	}
	/* An end joined elsewhere leaves its old peer alone. */
	if (ua->peer != NULL && ua->peer != ub)
		atomic_store_ptr(&ua->peer->peer, NULL);
	if (ub->peer != NULL && ub->peer != ua)
		atomic_store_ptr(&ub->peer->peer, NULL);
	atomic_store_ptr(&ua->peer, ub);
	atomic_store_ptr(&ub->peer, ua);
	mtx_unlock(&ukk_net_mtx);
	return (0);
}

int
ukk_if_destroy(const char *name)
{
	struct ukk_if *ui;
	struct ifnet *ifp;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	if (ui == NULL) {
		mtx_unlock(&ukk_net_mtx);
		return (ENXIO);
	}
	ifp = &ui->ifp;
	/* if_unlink_ifnet: unlinked and dying before anyone is told. */
	ui->attached = 0;
	ifp->if_flags |= IFF_DYING;
	if (ui->peer != NULL) {
		atomic_store_ptr(&ui->peer->peer, NULL);
		atomic_store_ptr(&ui->peer, NULL);
	}
	mtx_unlock(&ukk_net_mtx);

	CURVNET_SET(ifp->if_vnet);
	/* No transmit still reaches it through its old peer. */
	NET_EPOCH_WAIT();
	ifp->if_flags &= ~IFF_UP;		/* if_down */
	EVENTHANDLER_INVOKE(ifnet_departure_event, ifp);
	ifp->if_ioctl = ukk_dead_ioctl;		/* if_dead */
	ifp->if_output = ukk_dead_output;
	CURVNET_RESTORE();
	/* if_free */
	if_rele(ifp);
	return (0);
}

/*
 * Hands a driver's packet to the interface's current if_input (received)
 * or if_transmit (sent), as a driver does, in its vnet and the epoch, and
 * drops the caller's reference.
 */
static void
ukk_if_hand(struct ifnet *ifp, struct mbuf *m, int inbound)
{
	struct epoch_tracker et;

	CURVNET_SET(ifp->if_vnet);
	NET_EPOCH_ENTER(et);
	if (inbound)
		ifp->if_input(ifp, m);
	else
		(void)ifp->if_transmit(ifp, m);
	NET_EPOCH_EXIT(et);
	CURVNET_RESTORE();
	if_rele(ifp);
}

int
ukk_if_inject(const char *name, const void *frame, uk_size_t len, int inbound,
    unsigned shape)
{
	struct ifnet *ifp;
	struct mbuf *m;

	ifp = ifunit_ref(name);
	if (ifp == NULL)
		return (ENXIO);
	if (len > UKK_MAXFRAME) {
		if_rele(ifp);
		return (EMSGSIZE);
	}
	m = ukk_mbuf_chain(frame, (int)len, shape, inbound ? ifp : NULL);
	if (m == NULL) {
		if_rele(ifp);
		return (ENOBUFS);
	}
	ukk_if_hand(ifp, m, inbound);
	return (0);
}

/*
 * A driver's packet: the chain the options ask for, the 802.1Q header
 * moved into the packet header (M_VLANTAG) and a timestamp.
 */
static int
ukk_frame_mbuf(const void *frame, uk_size_t len, const struct ukk_frame_opts *o,
    struct ifnet *rcvif, struct mbuf **mp)
{
	const u_char *f = frame;
	u_char *stripped = NULL;
	struct bintime *bt;
	struct m_tag *t;
	struct mbuf *m;
	uint16_t tci = 0;

	if (len > UKK_MAXFRAME)
		return (EMSGSIZE);
	if (o->vlan) {
		if (len < ETHER_HDR_LEN + ETHER_VLAN_ENCAP_LEN ||
		    f[12] != 0x81 || f[13] != 0x00)
			return (EINVAL);
		tci = (uint16_t)(f[14] << 8 | f[15]);
		stripped = uh_alloc(len - ETHER_VLAN_ENCAP_LEN, 0);
		memcpy(stripped, f, 2 * ETHER_ADDR_LEN);
		memcpy(stripped + 2 * ETHER_ADDR_LEN, f + 16, len - 16);
		f = stripped;
		len -= ETHER_VLAN_ENCAP_LEN;
	}
	m = (o->cuts != NULL) ?
	    ukk_mbuf_cuts(f, (int)len, o->cuts, o->ncuts, o->lead, rcvif) :
	    ukk_mbuf_chain(f, (int)len, o->shape, rcvif);
	if (stripped != NULL)
		uh_free(stripped);
	if (m == NULL)
		return (ENOBUFS);
	if (o->vlan) {
		m->m_flags |= M_VLANTAG;
		m->m_pkthdr.ether_vtag = tci;
	}
	if (o->tstamp == UKK_TS_WALL) {
		m->m_flags |= M_TSTMP;
		m->m_pkthdr.rcv_tstmp = o->ts_ns;
	} else if (o->tstamp == UKK_TS_UPTIME) {
		t = m_tag_alloc(MTAG_BPF, MTAG_BPF_TIMESTAMP, sizeof(*bt),
		    M_NOWAIT);
		if (t == NULL) {
			m_freem(m);
			return (ENOBUFS);
		}
		bt = (struct bintime *)(t + 1);
		bt->sec = o->bt_sec;
		bt->frac = o->bt_frac;
		m_tag_prepend(m, t);
	}
	*mp = m;
	return (0);
}

int
ukk_if_inject_ex(const char *name, const void *frame, uk_size_t len,
    int inbound, const struct ukk_frame_opts *opts)
{
	struct ifnet *ifp;
	struct mbuf *m;
	int error;

	ifp = ifunit_ref(name);
	if (ifp == NULL)
		return (ENXIO);
	error = ukk_frame_mbuf(frame, len, opts, inbound ? ifp : NULL, &m);
	if (error != 0) {
		if_rele(ifp);
		return (error);
	}
	ukk_if_hand(ifp, m, inbound);
	return (0);
}

int
ukk_if_input_list(const char *name, const void *const *frames,
    const uk_size_t *lens, int n, const struct ukk_frame_opts *opts)
{
	struct epoch_tracker et;
	struct ifnet *ifp;
	struct mbuf *head = NULL, **tail = &head, *m;
	int error = 0, i;

	ifp = ifunit_ref(name);
	if (ifp == NULL)
		return (ENXIO);
	for (i = 0; i < n && error == 0; i++) {
		error = ukk_frame_mbuf(frames[i], lens[i], &opts[i], ifp, &m);
		if (error == 0) {
			*tail = m;
			tail = &m->m_nextpkt;
		}
	}
	if (error != 0) {
		while ((m = head) != NULL) {
			head = m->m_nextpkt;
			m_freem(m);
		}
		if_rele(ifp);
		return (error);
	}
	CURVNET_SET(ifp->if_vnet);
	NET_EPOCH_ENTER(et);
	if (head != NULL)
		ifp->if_input(ifp, head);
	NET_EPOCH_EXIT(et);
	CURVNET_RESTORE();
	if_rele(ifp);
	return (0);
}

long
ukk_if_last_sent(const char *name, void *buf, uk_size_t cap, int *flags,
    int *pcp)
{
	struct ukk_if *ui;
	long len = -1;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	if (ui != NULL && atomic_load_int(&ui->sent) != 0) {
		len = ui->last_len;
		memcpy(buf, ui->last, MIN((uk_size_t)MIN(len, UKK_LASTMAX), cap));
		*flags = ui->last_flags;
		*pcp = ui->last_pcp;
	}
	mtx_unlock(&ukk_net_mtx);
	return (len);
}

int
ukk_if_received(const char *name)
{
	struct ukk_if *ui;
	int received;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	received = (ui != NULL) ? (int)atomic_load_int(&ui->received) : -1;
	mtx_unlock(&ukk_net_mtx);
	return (received);
}

int
ukk_if_wrapped(const char *name)
{
	struct ukk_if *ui;
	int wrapped = -1;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	if (ui != NULL)
		wrapped = ui->ifp.if_input != ukk_drv_input ||
		    ui->ifp.if_transmit != ukk_drv_transmit;
	mtx_unlock(&ukk_net_mtx);
	return (wrapped);
}

int
ukk_if_stack(const char *name, int on)
{
	struct ukk_if *ui;
	int error = 0;

	on = on != 0;
	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	if (ui == NULL)
		error = ENXIO;
	else if (on != (ui->stk_input == NULL))
		error = on ? EBUSY : EINVAL;
	else if (on) {
		ui->stk_input = ui->ifp.if_input;
		ui->stk_transmit = ui->ifp.if_transmit;
		atomic_thread_fence_rel();
		ui->ifp.if_input = ukk_foreign_input;
		ui->ifp.if_transmit = ukk_foreign_transmit;
	} else {
		/* Blindly, whoever is on top now. */
		ui->ifp.if_input = ui->stk_input;
		ui->ifp.if_transmit = ui->stk_transmit;
		ui->stk_input = NULL;
		ui->stk_transmit = NULL;
	}
	mtx_unlock(&ukk_net_mtx);
	if (error == 0 && !on)
		NET_EPOCH_WAIT();	/* nobody still in the wrappers */
	return (error);
}

int
ukk_if_stacked_frames(const char *name)
{
	struct ukk_if *ui;
	int frames;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	frames = (ui != NULL) ? (int)atomic_load_int(&ui->stk_frames) : -1;
	mtx_unlock(&ukk_net_mtx);
	return (frames);
}

static int
ukk_top_of(void *fn, void *drv, void *foreign)
{
	return (fn == drv ? UKK_TOP_DRIVER : fn == foreign ? UKK_TOP_FOREIGN :
	    UKK_TOP_MODULE);
}

int
ukk_if_top(const char *name)
{
	struct ukk_if *ui, *last = NULL;
	int in, out;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	if (ui == NULL) {
		TAILQ_FOREACH(ui, &ukk_ifs, link)
			if (ukk_name_eq(ui->ifp.if_xname, name))
				last = ui;
		ui = last;
	}
	if (ui == NULL) {
		mtx_unlock(&ukk_net_mtx);
		return (-1);
	}
	in = ukk_top_of((void *)ui->ifp.if_input, (void *)ukk_drv_input,
	    (void *)ukk_foreign_input);
	out = ukk_top_of((void *)ui->ifp.if_transmit, (void *)ukk_drv_transmit,
	    (void *)ukk_foreign_transmit);
	mtx_unlock(&ukk_net_mtx);
	return (in == out ? in : UKK_TOP_MIXED);
}

int
ukk_if_pcount(const char *name)
{
	struct ukk_if *ui;
	int pcount;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	pcount = (ui != NULL) ? ui->ifp.if_pcount : -1;
	mtx_unlock(&ukk_net_mtx);
	return (pcount);
}

int
ukk_if_lladdr(const char *name, uk_u8 *mac)
{
	struct ukk_if *ui;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	if (ui != NULL)
		memcpy(mac, IF_LLADDR(&ui->ifp), ETHER_ADDR_LEN);
	mtx_unlock(&ukk_net_mtx);
	return (ui != NULL ? 0 : ENXIO);
}

int
ukk_if_rename(const char *name, const char *newname)
{
	struct ifnet *ifp;
	size_t nlen = ukk_strlen(newname);

	if (nlen == 0 || nlen >= IFNAMSIZ)
		return (EINVAL);
	ifp = ifunit_ref(name);
	if (ifp == NULL)
		return (ENXIO);
	CURVNET_SET(ifp->if_vnet);
	ifp->if_flags |= IFF_RENAMING;
	EVENTHANDLER_INVOKE(ifnet_departure_event, ifp);
	mtx_lock(&ukk_net_mtx);
	/* The link address keeps its old name: only if_xname matters here. */
	memcpy(ifp->if_xname, newname, nlen + 1);
	mtx_unlock(&ukk_net_mtx);
	ifp->if_flags &= ~IFF_RENAMING;
	CURVNET_RESTORE();
	if_rele(ifp);
	return (0);
}

int
ukk_if_input_burst(const char *name, const void *frame, uk_size_t len, long n,
    int list, uk_u64 *ns)
{
	struct epoch_tracker et;
	struct ifnet *ifp;
	struct mbuf *head = NULL, **tail = &head, *m;
	uk_u64 t0;
	int error = 0, k;

	*ns = 0;
	if (len > MJUM16BYTES)
		return (EMSGSIZE);
	if (list < 1)
		return (EINVAL);
	ifp = ifunit_ref(name);
	if (ifp == NULL)
		return (ENXIO);
	/* The list, built once and outside the time: the benchmark times the
	 * hand-over, not the emulation's mbuf allocator. */
	for (k = 0; k < list; k++) {
		m = m_get3((int)len, M_NOWAIT, MT_DATA, M_PKTHDR);
		if (m == NULL) {
			error = ENOBUFS;
			break;
		}
		memcpy(mtod(m, void *), frame, len);
		m->m_len = m->m_pkthdr.len = (int)len;
		m->m_pkthdr.rcvif = ifp;
		*tail = m;
		tail = &m->m_nextpkt;
	}
	if (error == 0) {
		UKK_IF(ifp)->bench_keep = (u_int)list;
		CURVNET_SET(ifp->if_vnet);
		t0 = uh_uptime_ns();
		NET_EPOCH_ENTER(et);
		for (; n >= list; n -= list)
			ifp->if_input(ifp, head);
		/* The rest: a shorter list. */
		for (k = 1, m = head; m != NULL && k < n; k++)
			m = m->m_nextpkt;
		if (n > 0 && m != NULL) {
			struct mbuf *rest = m->m_nextpkt;

			m->m_nextpkt = NULL;
			UKK_IF(ifp)->bench_keep = (u_int)n;
			ifp->if_input(ifp, head);
			m->m_nextpkt = rest;
		}
		NET_EPOCH_EXIT(et);
		*ns = uh_uptime_ns() - t0;
		CURVNET_RESTORE();
		UKK_IF(ifp)->bench_keep = 0;
	}
	while ((m = head) != NULL) {
		head = m->m_nextpkt;
		m->m_nextpkt = NULL;
		m_freem(m);
	}
	if_rele(ifp);
	return (error);
}

int
ukk_if_sent(const char *name)
{
	struct ukk_if *ui;
	int sent;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	ui = ukk_if_find_locked(name);
	sent = (ui != NULL) ? (int)atomic_load_int(&ui->sent) : -1;
	mtx_unlock(&ukk_net_mtx);
	return (sent);
}

/*
 * End of run: the module gave every interface back as it found it (its
 * own if_input and if_transmit, no promiscuous count, no reference), and
 * wrote nothing into one whose last reference had gone.
 */
int
ukk_if_check_restored(void)
{
	struct ukk_if *ui;
	struct ifnet *ifp;
	if_input_fn_t input;
	if_transmit_fn_t transmit;
	int bad, failed = 0;

	ukk_net_init();
	mtx_lock(&ukk_net_mtx);
	TAILQ_FOREACH(ui, &ukk_ifs, link) {
		ifp = &ui->ifp;
		bad = 0;
		input = ui->released ? ui->rel_input : ifp->if_input;
		transmit = ui->released ? ui->rel_transmit : ifp->if_transmit;
		if (input != ukk_drv_input || transmit != ukk_drv_transmit) {
			uh_violation("%s: if_input or if_transmit not the "
			    "driver's own%s", ifp->if_xname, ui->released ?
			    " when its last reference went" : "");
			bad = 1;
		}
		if (ui->released && (ifp->if_input != ui->rel_input ||
		    ifp->if_transmit != ui->rel_transmit)) {
			uh_violation("%s: if_input or if_transmit written "
			    "after the interface was freed", ifp->if_xname);
			bad = 1;
		}
		/* A departed interface's count goes with it (bpf leaves
		 * it alone on departure). */
		if (ui->attached && ifp->if_pcount != 0) {
			uh_violation("%s: still promiscuous (if_pcount %d)",
			    ifp->if_xname, ifp->if_pcount);
			bad = 1;
		}
		if (ui->attached ? ifp->if_refcount != 1 : !ui->released) {
			uh_violation("%s: %u references held by the module",
			    ifp->if_xname, ifp->if_refcount - ui->attached);
			bad = 1;
		}
		failed += bad;
	}
	mtx_unlock(&ukk_net_mtx);
	return (failed);
}

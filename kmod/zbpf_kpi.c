/*
 * zbpf_kpi.c: the zbpf_kpi_* functions of ffi/zbpf_kpi.h.
 *
 * Each function adapts one kernel interface (a macro, an inline function or
 * a structure layout) so that Rust can call it. None of them decides
 * anything about bpf: that is the Rust engine's job.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/lock.h>
#include <sys/malloc.h>
#include <sys/mutex.h>
#include <sys/sx.h>
#include <sys/proc.h>
#include <sys/jail.h>
#include <sys/ucred.h>
#include <sys/uio.h>
#include <sys/selinfo.h>
#include <sys/event.h>
#include <sys/signalvar.h>
#include <sys/sigio.h>
#include <sys/filio.h>
#include <sys/counter.h>
#include <sys/epoch.h>
#include <sys/callout.h>
#include <sys/time.h>
#include <sys/mbuf.h>
#include <sys/socket.h>

#include <net/if.h>
#include <net/if_var.h>
#include <net/if_private.h>
#include <net/ethernet.h>
#include <net/if_vlan_var.h>
#include <net/bpf.h>
#include <net/route.h>
#include <net/vnet.h>

#include <vm/vm.h>
#include <vm/pmap.h>
#include <vm/vm_extern.h>
#include <vm/vm_map.h>
#include <vm/vm_page.h>
#include <vm/vm_param.h>
#include <machine/vmparam.h>

#include "zbpf_kpi.h"

MALLOC_DEFINE(M_ZBPF, "zbpf", "zbpf capture state and buffers");

/* bpf's sleep priority: interruptible, network. */
#define ZBPF_PRINET 26

/* ---------------------------------------------------------------------- */
/* Memory, panic, log                                                     */

void *
zbpf_kpi_malloc(size_t size, size_t align, int may_sleep)
{
	int flags = may_sleep ? M_WAITOK : M_NOWAIT;

	if (align <= sizeof(void *))
		return (malloc(size, M_ZBPF, flags));
	return (malloc_aligned(size, align, M_ZBPF, flags));
}

void
zbpf_kpi_free(void *ptr)
{
	free(ptr, M_ZBPF);
}

void *
zbpf_kpi_exec_alloc(const uint8_t *code, size_t size)
{
	void *p;

	p = malloc_exec(size, M_ZBPF, M_WAITOK);
	memcpy(p, code, size);
	return (p);
}

void
zbpf_kpi_exec_free(void *ptr)
{
	free(ptr, M_ZBPF);
}

void
zbpf_kpi_panic(const char *msg, size_t len)
{
	panic("zbpf: %.*s", (int)len, msg);
}

void
zbpf_kpi_log(const char *msg, size_t len)
{
	printf("zbpf: %.*s\n", (int)len, msg);
}

/* ---------------------------------------------------------------------- */
/* Locks, sleep, wakeup                                                   */

struct zbpf_mtx {
	struct mtx m;
};

struct zbpf_mtx *
zbpf_kpi_mtx_alloc(void)
{
	struct zbpf_mtx *zm;

	zm = malloc(sizeof(*zm), M_ZBPF, M_WAITOK | M_ZERO);
	mtx_init(&zm->m, "zbpf descriptor", NULL, MTX_DEF);
	return (zm);
}

void
zbpf_kpi_mtx_free(struct zbpf_mtx *zm)
{
	mtx_destroy(&zm->m);
	free(zm, M_ZBPF);
}

void
zbpf_kpi_mtx_lock(struct zbpf_mtx *zm)
{
	mtx_lock(&zm->m);
}

void
zbpf_kpi_mtx_unlock(struct zbpf_mtx *zm)
{
	mtx_unlock(&zm->m);
}

int
zbpf_kpi_mtx_sleep(struct zbpf_mtx *zm, const void *chan, int catch_signals,
    int ticks)
{
	return (mtx_sleep(chan, &zm->m,
	    ZBPF_PRINET | (catch_signals ? PCATCH : 0), "zbpf", ticks));
}

void
zbpf_kpi_wakeup(const void *chan)
{
	wakeup(chan);
}

struct zbpf_sx {
	struct sx s;
};

struct zbpf_sx *
zbpf_kpi_sx_alloc(void)
{
	struct zbpf_sx *zs;

	zs = malloc(sizeof(*zs), M_ZBPF, M_WAITOK | M_ZERO);
	sx_init(&zs->s, "zbpf global");
	return (zs);
}

void
zbpf_kpi_sx_free(struct zbpf_sx *zs)
{
	sx_destroy(&zs->s);
	free(zs, M_ZBPF);
}

void
zbpf_kpi_sx_xlock(struct zbpf_sx *zs)
{
	sx_xlock(&zs->s);
}

void
zbpf_kpi_sx_xunlock(struct zbpf_sx *zs)
{
	sx_xunlock(&zs->s);
}

/* ---------------------------------------------------------------------- */
/* Counters, epoch, time                                                  */

uint64_t *
zbpf_kpi_counter_alloc(void)
{
	return (counter_u64_alloc(M_WAITOK));
}

void
zbpf_kpi_counter_free(uint64_t *c)
{
	counter_u64_free(c);
}

uint64_t
zbpf_kpi_counter_fetch(uint64_t *c)
{
	return (counter_u64_fetch(c));
}

void
zbpf_kpi_counter_zero(uint64_t *c)
{
	counter_u64_zero(c);
}

void
zbpf_kpi_net_epoch_wait(void)
{
	NET_EPOCH_WAIT();
}

/* Rust calls binuptime(9) and its kin with struct zbpf_bintime. */
_Static_assert(sizeof(struct bintime) == sizeof(struct zbpf_bintime) &&
    offsetof(struct bintime, sec) == offsetof(struct zbpf_bintime, sec) &&
    offsetof(struct bintime, frac) == offsetof(struct zbpf_bintime, frac),
    "struct bintime is not struct zbpf_bintime");

int
zbpf_kpi_hz(void)
{
	return (hz);
}

/* ---------------------------------------------------------------------- */
/* Notification resources of one descriptor                               */

struct zbpf_notes {
	struct mtx kl_mtx;	/* the knlist's lock */
	struct selinfo sel;	/* sel.si_note is the knlist */
	struct sigio *sigio;
	struct callout callout;
	void *cookie;
	uint64_t token;
};

static void
zbpf_timeout(void *arg)
{
	struct zbpf_notes *n = arg;

	zbpf_rs_timer(n->cookie, n->token);
}

static void
zbpf_filt_detach(struct knote *kn)
{
	struct zbpf_notes *n = kn->kn_hook;

	knlist_remove(&n->sel.si_note, kn, 0);
}

static int
zbpf_filt_event(struct knote *kn, int which)
{
	struct zbpf_notes *n = kn->kn_hook;
	int64_t data = 0;
	int ready;

	ready = zbpf_rs_kq_event(n->cookie, which, &data);
	if (ready)
		kn->kn_data = data;
	return (ready);
}

static int
zbpf_filt_read(struct knote *kn, long hint __unused)
{
	return (zbpf_filt_event(kn, ZBPF_KQ_READ));
}

static int
zbpf_filt_write(struct knote *kn, long hint __unused)
{
	return (zbpf_filt_event(kn, ZBPF_KQ_WRITE));
}

static const struct filterops zbpf_read_filtops = {
	.f_isfd = 1,
	.f_detach = zbpf_filt_detach,
	.f_event = zbpf_filt_read,
};

static const struct filterops zbpf_write_filtops = {
	.f_isfd = 1,
	.f_detach = zbpf_filt_detach,
	.f_event = zbpf_filt_write,
};

struct zbpf_notes *
zbpf_kpi_notes_alloc(void)
{
	struct zbpf_notes *n;

	n = malloc(sizeof(*n), M_ZBPF, M_WAITOK | M_ZERO);
	mtx_init(&n->kl_mtx, "zbpf knlist", NULL, MTX_DEF);
	knlist_init_mtx(&n->sel.si_note, &n->kl_mtx);
	/* Drainable even if never bound. */
	callout_init(&n->callout, 1);
	return (n);
}

void
zbpf_kpi_notes_bind(struct zbpf_notes *n, void *cookie, struct zbpf_mtx *zm)
{
	n->cookie = cookie;
	/*
	 * The timer runs with the descriptor's mutex, so that stopping it
	 * under that mutex cancels it for good; the Rust side drops the
	 * mutex before it wakes anyone.
	 */
	callout_init_mtx(&n->callout, &zm->m, CALLOUT_RETURNUNLOCKED);
}

void
zbpf_kpi_notes_drain(struct zbpf_notes *n)
{
	callout_drain(&n->callout);
	funsetown(&n->sigio);
	selwakeuppri(&n->sel, ZBPF_PRINET);
	seldrain(&n->sel);
	knlist_clear(&n->sel.si_note, 0);
}

void
zbpf_kpi_notes_free(struct zbpf_notes *n)
{
	knlist_destroy(&n->sel.si_note);
	mtx_destroy(&n->kl_mtx);
	free(n, M_ZBPF);
}

void
zbpf_kpi_select_wakeup(struct zbpf_notes *n)
{
	selwakeuppri(&n->sel, ZBPF_PRINET);
	KNOTE_UNLOCKED(&n->sel.si_note, 0);
}

void
zbpf_kpi_select_record(struct zbpf_notes *n, struct thread *td)
{
	selrecord(td, &n->sel);
}

void
zbpf_kpi_signal(struct zbpf_notes *n, int sig)
{
	if (n->sigio != NULL)
		pgsigio(&n->sigio, sig, 0);
}

int
zbpf_kpi_set_owner(struct zbpf_notes *n, int owner)
{
	return (fsetown(owner, &n->sigio));
}

int
zbpf_kpi_get_owner(struct zbpf_notes *n)
{
	return (fgetown(&n->sigio));
}

void
zbpf_kpi_timer_arm(struct zbpf_notes *n, int ticks, uint64_t token)
{
	n->token = token;
	callout_reset(&n->callout, ticks, zbpf_timeout, n);
}

void
zbpf_kpi_timer_stop(struct zbpf_notes *n)
{
	callout_stop(&n->callout);
}

void
zbpf_kpi_knote_attach(struct zbpf_notes *n, struct knote *kn, int filter)
{
	kn->kn_fop = filter == ZBPF_KQ_WRITE ? &zbpf_write_filtops :
	    &zbpf_read_filtops;
	kn->kn_hook = n;
	knlist_add(&n->sel.si_note, kn, 0);
}

int
zbpf_kpi_knote_filter(struct knote *kn)
{
	return (kn->kn_filter);
}

/* ---------------------------------------------------------------------- */
/* User memory                                                            */

int
zbpf_kpi_copyin(uint64_t uaddr, void *kaddr, size_t len)
{
	return (copyin((const void *)(uintptr_t)uaddr, kaddr, len));
}

int
zbpf_kpi_copyout(const void *kaddr, uint64_t uaddr, size_t len)
{
	return (copyout(kaddr, (void *)(uintptr_t)uaddr, len));
}

int
zbpf_kpi_uiomove(void *kaddr, size_t len, struct uio *uio)
{
	if (len > INT_MAX)
		return (EINVAL);
	return (uiomove(kaddr, (int)len, uio));
}

size_t
zbpf_kpi_uio_resid(struct uio *uio)
{
	return (uio->uio_resid < 0 ? 0 : (size_t)uio->uio_resid);
}

int
zbpf_kpi_curpid(void)
{
	return (curthread->td_proc->p_pid);
}

void
zbpf_kpi_release_pages(void **pages, int npages)
{
	vm_page_unhold_pages((vm_page_t *)pages, npages);
}

void *
zbpf_kpi_map_pages(void **pages, int npages)
{
	vm_offset_t va;

	if (npages <= 0)
		return (NULL);
	va = kva_alloc(ptoa(npages));
	if (va == 0)
		return (NULL);
	pmap_qenter(va, (vm_page_t *)pages, npages);
	return ((void *)va);
}

void
zbpf_kpi_unmap_pages(void *kva, int npages)
{
	pmap_qremove((vm_offset_t)kva, npages);
	kva_free((vm_offset_t)kva, ptoa(npages));
}

int
zbpf_kpi_hold_pages(uint64_t uaddr, int npages, void **pages, void **kva)
{
	vm_map_t map = &curthread->td_proc->p_vmspace->vm_map;
	vm_offset_t va = (vm_offset_t)uaddr;
	vm_page_t m;
	int i;

	for (i = 0; i < npages; i++) {
		if (vm_fault_quick_hold_pages(map, va + ptoa(i), PAGE_SIZE,
		    VM_PROT_READ | VM_PROT_WRITE, &m, 1) != 1) {
			zbpf_kpi_release_pages(pages, i);
			return (EFAULT);
		}
		pages[i] = m;
		kva[i] = (void *)PHYS_TO_DMAP(VM_PAGE_TO_PHYS(m));
	}
	return (0);
}

/* ---------------------------------------------------------------------- */
/* Interfaces                                                             */

struct ifnet *
zbpf_kpi_ifunit_ref(const char *name)
{
	struct ifnet *ifp;

	CURVNET_SET(TD_TO_VNET(curthread));
	ifp = ifunit_ref(name);
	CURVNET_RESTORE();
	return (ifp);
}

void
zbpf_kpi_if_ref(struct ifnet *ifp)
{
	if_ref(ifp);
}

void
zbpf_kpi_if_rele(struct ifnet *ifp)
{
	if_rele(ifp);
}

const char *
zbpf_kpi_if_name(struct ifnet *ifp)
{
	return (if_name(ifp));
}

int
zbpf_kpi_if_type(struct ifnet *ifp)
{
	return (if_gettype(ifp));
}

int
zbpf_kpi_if_is_up(struct ifnet *ifp)
{
	return ((if_getflags(ifp) & IFF_UP) != 0);
}

const char *
zbpf_kpi_if_dname(struct ifnet *ifp)
{
	return (if_getdname(ifp));
}

int
zbpf_kpi_if_needs_epoch(struct ifnet *ifp)
{
	return ((if_getflags(ifp) & IFF_NEEDSEPOCH) != 0);
}

int
zbpf_kpi_if_is_renaming(struct ifnet *ifp)
{
	return ((if_getflags(ifp) & IFF_RENAMING) != 0);
}

uint32_t
zbpf_kpi_if_mtu(struct ifnet *ifp)
{
	return ((uint32_t)if_getmtu(ifp));
}

int
zbpf_kpi_if_lladdr(struct ifnet *ifp, uint8_t *mac)
{
	const char *ll = if_getlladdr(ifp);

	if (ll == NULL || if_getaddrlen(ifp) != ETHER_ADDR_LEN)
		return (0);
	memcpy(mac, ll, ETHER_ADDR_LEN);
	return (1);
}

int
zbpf_kpi_ifpromisc(struct ifnet *ifp, int on)
{
	int error;

	CURVNET_SET(if_getvnet(ifp));
	error = ifpromisc(ifp, on);
	CURVNET_RESTORE();
	return (error);
}

int
zbpf_kpi_if_output(struct ifnet *ifp, const uint8_t *frame, size_t len,
    size_t hlen, int flags, int pcp)
{
	struct epoch_tracker et;
	struct sockaddr dst;
	struct route ro;
	struct mbuf *m;
	int error;

	if (len > MJUM16BYTES || hlen > sizeof(dst.sa_data) || hlen > len)
		return (EIO);
	m = m_get3((int)len, M_WAITOK, MT_DATA, M_PKTHDR);
	if (m == NULL)
		return (EIO);
	m->m_pkthdr.len = m->m_len = (int)len;
	memcpy(mtod(m, void *), frame, len);
	if (flags & ZBPF_OUT_BCAST)
		m->m_flags |= M_BCAST;
	if (flags & ZBPF_OUT_MCAST)
		m->m_flags |= M_MCAST;
	if (flags & ZBPF_OUT_HIDE)
		m->m_flags |= M_PROMISC;
	if (pcp != 0 && vlan_set_pcp(m, (uint8_t)pcp) != 0) {
		m_freem(m);
		return (ENOMEM);
	}

	bzero(&dst, sizeof(dst));
	bzero(&ro, sizeof(ro));
	dst.sa_family = (flags & ZBPF_OUT_HDRCMPLT) ? pseudo_AF_HDRCMPLT :
	    AF_UNSPEC;
	if (hlen != 0) {
		memcpy(dst.sa_data, frame, hlen);
		ro.ro_prepend = (char *)&dst.sa_data;
		ro.ro_plen = (int)hlen;
		ro.ro_flags = RT_HAS_HEADER;
		m_adj(m, (int)hlen);
	}
	CURVNET_SET(if_getvnet(ifp));
	NET_EPOCH_ENTER(et);
	error = ifp->if_output(ifp, m, &dst, &ro);
	NET_EPOCH_EXIT(et);
	CURVNET_RESTORE();
	return (error);
}

int
zbpf_kpi_if_input(struct ifnet *ifp, const uint8_t *frame, size_t len)
{
	struct epoch_tracker et;
	struct mbuf *m;

	if (len > MJUM16BYTES)
		return (EIO);
	m = m_get3((int)len, M_NOWAIT, MT_DATA, M_PKTHDR);
	if (m == NULL)
		return (ENOBUFS);
	m->m_pkthdr.len = m->m_len = (int)len;
	m->m_pkthdr.rcvif = ifp;
	memcpy(mtod(m, void *), frame, len);
	CURVNET_SET(if_getvnet(ifp));
	NET_EPOCH_ENTER(et);
	if_input(ifp, m);
	NET_EPOCH_EXIT(et);
	CURVNET_RESTORE();
	return (0);
}

/* ---------------------------------------------------------------------- */
/* mbufs                                                                  */

const uint8_t *
zbpf_kpi_mbuf_data(const struct mbuf *m)
{
	return (mtod(m, const uint8_t *));
}

uint32_t
zbpf_kpi_mbuf_len(const struct mbuf *m)
{
	return (m->m_len < 0 ? 0 : (uint32_t)m->m_len);
}

const struct mbuf *
zbpf_kpi_mbuf_next(const struct mbuf *m)
{
	return (m->m_next);
}

/*
 * zbpf_kpi.h: the interface between zbpf's Rust engine and the thin C side
 * of the FreeBSD kernel module.
 *
 * One declaration serves both languages: kmod/zbpf_kpi.c includes this
 * header, and build.rs runs bindgen over it to produce the Rust bindings.
 *
 * zbpf_kpi_* functions are implemented in C (kmod/) and called by Rust.
 * They exist because the kernel's API is made of macros, inline functions
 * and structure layouts Rust cannot reach; each one adapts one KPI and
 * decides nothing. The few kernel functions Rust can reach as they are,
 * it calls directly (declared at the end of "Rust calls C").
 *
 * zbpf_rs_* functions are implemented in Rust (src/kernel/) and called by
 * C: the cdevsw operations, the taps, the timer, the sysctls and the module
 * events.
 *
 * Conventions: errors are FreeBSD errno values (0 = success). "cookie" is
 * an opaque Rust pointer that C stores and hands back. Nothing here sleeps
 * unless it says so.
 */
#ifndef ZBPF_KPI_H
#define ZBPF_KPI_H

#ifdef _KERNEL
#include <sys/types.h>
#else
#include <stddef.h>
#include <stdint.h>
#endif

/* Bumped whenever a declaration below changes meaning. */
#define ZBPF_KPI_VERSION 5

struct knote;
struct mbuf;
struct ifnet;
struct thread;
struct uio;

/* Opaque objects allocated by the C side. */
struct zbpf_mtx;   /* an mtx(9) */
struct zbpf_sx;    /* an sx(9) */
struct zbpf_notes; /* selinfo + knlist (with its own mtx) + sigio + callout */

/* struct bintime. */
struct zbpf_bintime {
	int64_t sec;
	uint64_t frac;
};

/* ---------------------------------------------------------------------- */
/* Rust calls C                                                           */
/* ---------------------------------------------------------------------- */

/* malloc(9)/free(9) with M_ZBPF. May sleep when may_sleep != 0 (M_WAITOK),
 * else M_NOWAIT. align is a power of two. */
void *zbpf_kpi_malloc(size_t size, size_t align, int may_sleep);
void zbpf_kpi_free(void *ptr);

/* Executable memory for compiled filters: malloc_exec(9) of size bytes
 * (M_WAITOK), filled with code, freed with zbpf_kpi_exec_free. */
void *zbpf_kpi_exec_alloc(const uint8_t *code, size_t size);
void zbpf_kpi_exec_free(void *ptr);

/* panic(9) with a message of len bytes. Does not return. */
void zbpf_kpi_panic(const char *msg, size_t len);
/* printf(9) of len bytes, prefixed "zbpf: ". */
void zbpf_kpi_log(const char *msg, size_t len);

/* mtx(9), MTX_DEF. */
struct zbpf_mtx *zbpf_kpi_mtx_alloc(void);
void zbpf_kpi_mtx_free(struct zbpf_mtx *m);
void zbpf_kpi_mtx_lock(struct zbpf_mtx *m);
void zbpf_kpi_mtx_unlock(struct zbpf_mtx *m);
/* mtx_sleep(chan, m, PRINET | (catch ? PCATCH : 0), "zbpf", ticks): 0 when
 * woken, EWOULDBLOCK on timeout, EINTR or ERESTART on a signal. */
int zbpf_kpi_mtx_sleep(struct zbpf_mtx *m, const void *chan, int catch_signals,
    int ticks);
/* wakeup(9). */
void zbpf_kpi_wakeup(const void *chan);

/* sx(9), exclusive only. */
struct zbpf_sx *zbpf_kpi_sx_alloc(void);
void zbpf_kpi_sx_free(struct zbpf_sx *s);
void zbpf_kpi_sx_xlock(struct zbpf_sx *s);
void zbpf_kpi_sx_xunlock(struct zbpf_sx *s);

/* counter(9). Adding is inline in the engine, as amd64's headers inline
 * counter_u64_add (an add at the counter's offset from %gs). */
uint64_t *zbpf_kpi_counter_alloc(void);
void zbpf_kpi_counter_free(uint64_t *c);
uint64_t zbpf_kpi_counter_fetch(uint64_t *c);
void zbpf_kpi_counter_zero(uint64_t *c);

/* NET_EPOCH_WAIT(): sleeps until every network epoch section in progress
 * has ended. */
void zbpf_kpi_net_epoch_wait(void);

/* hz. */
int zbpf_kpi_hz(void);

/*
 * Kernel functions Rust calls without a shim: plain functions (no macro,
 * no inline) whose arguments Rust can describe, on the tap's path for
 * every packet. binuptime(9), getbinuptime(9), getboottimebin(9): their
 * struct bintime has struct zbpf_bintime's layout (kmod/zbpf_kpi.c checks
 * it), so the Rust side declares them with it; the C side keeps the
 * kernel's own declarations.
 */
#ifndef _KERNEL
void binuptime(struct zbpf_bintime *bt);
void getbinuptime(struct zbpf_bintime *bt);
void getboottimebin(struct zbpf_bintime *boottimebin);
#endif

/* Per-descriptor notification resources. Once bound to a cookie, the timer
 * calls zbpf_rs_timer(cookie, token) and kqueue notes call
 * zbpf_rs_kq_event(cookie, ...). The knlist has its own mutex, taken before
 * the descriptor's. */
struct zbpf_notes *zbpf_kpi_notes_alloc(void);
/* Binds the notes to their descriptor: the cookie, and the descriptor's
 * mutex, with which the timer runs (callout_init_mtx). Before any arming. */
void zbpf_kpi_notes_bind(struct zbpf_notes *n, void *cookie,
    struct zbpf_mtx *m);
/* Stops and drains the timer, wakes and drains select records and knotes,
 * drops the SIGIO owner: afterwards no callback uses the cookie. May
 * sleep. */
void zbpf_kpi_notes_drain(struct zbpf_notes *n);
void zbpf_kpi_notes_free(struct zbpf_notes *n);
/* selwakeuppri(PRINET) and KNOTE_UNLOCKED. */
void zbpf_kpi_select_wakeup(struct zbpf_notes *n);
/* selrecord(td). */
void zbpf_kpi_select_record(struct zbpf_notes *n, struct thread *td);
/* pgsigio(sig) if an owner is set. */
void zbpf_kpi_signal(struct zbpf_notes *n, int sig);
/* fsetown(owner) / fgetown(). */
int zbpf_kpi_set_owner(struct zbpf_notes *n, int owner);
int zbpf_kpi_get_owner(struct zbpf_notes *n);
/* callout_reset(ticks) / callout_stop(), with the descriptor's mutex held:
 * a timer stopped under that mutex never fires afterwards. */
void zbpf_kpi_timer_arm(struct zbpf_notes *n, int ticks, uint64_t token);
void zbpf_kpi_timer_stop(struct zbpf_notes *n);
/* Attaches a knote of filter ZBPF_KQ_* to the notes' knlist. */
#define ZBPF_KQ_READ 1
#define ZBPF_KQ_WRITE 2
void zbpf_kpi_knote_attach(struct zbpf_notes *n, struct knote *kn, int filter);
/* The knote's filter (EVFILT_*) value. */
int zbpf_kpi_knote_filter(struct knote *kn);

/* User memory of the calling thread: copyin(9), copyout(9), uiomove(9). */
int zbpf_kpi_copyin(uint64_t uaddr, void *kaddr, size_t len);
int zbpf_kpi_copyout(const void *kaddr, uint64_t uaddr, size_t len);
int zbpf_kpi_uiomove(void *kaddr, size_t len, struct uio *uio);
size_t zbpf_kpi_uio_resid(struct uio *uio);
/* The calling thread's process id. */
int zbpf_kpi_curpid(void);

/* Holds npages user pages for writing, starting at the page-aligned uaddr
 * of the calling process (vm_fault_quick_hold_pages), and fills pages[]
 * (vm_page_t) and kva[] (their direct-map addresses). The process's map is
 * left as it is. EFAULT (having released whatever it held) if a page
 * cannot be held. May sleep. */
int zbpf_kpi_hold_pages(uint64_t uaddr, int npages, void **pages, void **kva);
/* Unwires pages held by zbpf_kpi_hold_pages. */
void zbpf_kpi_release_pages(void **pages, int npages);
/* Maps npages held pages one after the other in kernel address space
 * (kva_alloc(9), pmap_qenter(9)): the first byte, or NULL when no address
 * space is left. zbpf_kpi_unmap_pages undoes it (pmap_qremove(9),
 * kva_free(9)), before the pages are released. May sleep. */
void *zbpf_kpi_map_pages(void **pages, int npages);
void zbpf_kpi_unmap_pages(void *kva, int npages);

/* ifnet access. Handles are referenced ifnets (if_ref/if_rele). */
struct ifnet *zbpf_kpi_ifunit_ref(const char *name);
void zbpf_kpi_if_ref(struct ifnet *ifp);
void zbpf_kpi_if_rele(struct ifnet *ifp);
/* NUL-terminated if_xname. */
const char *zbpf_kpi_if_name(struct ifnet *ifp);
/* if_type (IFT_*). */
int zbpf_kpi_if_type(struct ifnet *ifp);
/* The driver's name (if_dname: "em", "lagg", ...). */
const char *zbpf_kpi_if_dname(struct ifnet *ifp);
/* Whether the driver calls if_input outside the network epoch
 * (IFF_NEEDSEPOCH). */
int zbpf_kpi_if_needs_epoch(struct ifnet *ifp);
int zbpf_kpi_if_is_up(struct ifnet *ifp);
/* Whether the interface is being renamed (IFF_RENAMING). */
int zbpf_kpi_if_is_renaming(struct ifnet *ifp);
uint32_t zbpf_kpi_if_mtu(struct ifnet *ifp);
/* Copies the link-level address (6 bytes) and returns 1, or returns 0. */
int zbpf_kpi_if_lladdr(struct ifnet *ifp, uint8_t *mac);
/* ifpromisc(9) in the interface's vnet. */
int zbpf_kpi_ifpromisc(struct ifnet *ifp, int on);

/* Flags of zbpf_kpi_if_output. */
#define ZBPF_OUT_HDRCMPLT 0x01  /* pseudo_AF_HDRCMPLT: header is complete */
#define ZBPF_OUT_BCAST 0x02     /* M_BCAST */
#define ZBPF_OUT_MCAST 0x04     /* M_MCAST */
#define ZBPF_OUT_HIDE 0x08      /* M_PROMISC: taps skip the outgoing copy */
/* Builds an mbuf of len bytes from frame, marks it as flags say, tags it
 * with VLAN priority pcp (0 = none), and hands it to if_output with the
 * first hlen bytes as the link header (route prepend), in the interface's
 * vnet and the network epoch. May sleep (M_WAITOK). EIO if no mbuf. */
int zbpf_kpi_if_output(struct ifnet *ifp, const uint8_t *frame, size_t len,
    size_t hlen, int flags, int pcp);
/* Copies frame into an mbuf (M_NOWAIT) with rcvif = ifp and hands it to
 * the interface's input function. ENOBUFS if no mbuf. */
int zbpf_kpi_if_input(struct ifnet *ifp, const uint8_t *frame, size_t len);

/* Wraps ifp's if_input and if_transmit (a "hook") so that every frame is
 * first described to zbpf_rs_tap(tap, ...), then handed to the original
 * function, untouched. With a hook already there (kept, or left in place
 * under another module's wrapper), only its tap changes. ENOMEM, or ENOSPC
 * for an interface index beyond the hook table. May sleep. */
int zbpf_kpi_tap_install(struct ifnet *ifp, void *tap);
/* Stops delivering ifp's frames to its tap and returns once no wrapper can
 * still be delivering. The original functions go back, and the hook away,
 * unless keep != 0 (the hook stays, passing frames on) or another module
 * wrapped the functions after zbpf did: then the hook stays as well and
 * the result is EBUSY. May sleep. */
int zbpf_kpi_tap_remove(struct ifnet *ifp, int keep);
/* The interface is leaving: its hook, whatever its state, goes. */
void zbpf_kpi_tap_forget(struct ifnet *ifp);
/* Removes every idle hook that can now go (another module unwrapped, and
 * the hook was not kept) and returns how many hooks remain. May sleep. */
int zbpf_kpi_hooks_settle(void);

/* mbuf chain access, past the first mbuf of a packet. */
const uint8_t *zbpf_kpi_mbuf_data(const struct mbuf *m);
uint32_t zbpf_kpi_mbuf_len(const struct mbuf *m);
const struct mbuf *zbpf_kpi_mbuf_next(const struct mbuf *m);

/* ---------------------------------------------------------------------- */
/* C calls Rust                                                           */
/* ---------------------------------------------------------------------- */

/* Module events. load: 0 or an errno. quiesce: EBUSY while descriptors are
 * open or hooks remain; with unloading != 0 (MOD_UNLOAD), a success also
 * makes every later open fail with ENXIO. unload (after the device is
 * destroyed): everything freed. */
int zbpf_rs_load(void);
int zbpf_rs_quiesce(int unloading);
void zbpf_rs_unload(void);

/* Naming: given whether the names of the built-in bpf are taken and the
 * loader tunable (-1 unset, 0 side-by-side, 1 replace), returns 1 to use
 * /dev/bpf and net.bpf, 0 for /dev/zbpf and net.zbpf. */
int zbpf_rs_choose_replace(int dev_bpf_taken, int sysctl_bpf_taken,
    int tunable);

/* cdevsw operations. open returns the cookie for devfs_set_cdevpriv. */
int zbpf_rs_open(int fflags, void **cookie);
void zbpf_rs_close(void *cookie);
int zbpf_rs_read(void *cookie, struct uio *uio, int ioflag);
int zbpf_rs_write(void *cookie, struct uio *uio, int ioflag);
int zbpf_rs_ioctl(void *cookie, unsigned long cmd, uint8_t *data,
    size_t datalen);
int zbpf_rs_poll(void *cookie, int events, struct thread *td);
int zbpf_rs_kqfilter(void *cookie, struct knote *kn);
/* A knote's f_event: 1 if ready, with *data set. */
int zbpf_rs_kq_event(void *cookie, int filter, int64_t *data);

/* The read-timeout callout fired. Called with the descriptor's mutex
 * held; returns with it released. */
void zbpf_rs_timer(void *cookie, uint64_t token);

/* One packet, described by the tap wrapper. */
struct zbpf_packet {
	const uint8_t *data;		/* the first mbuf's data */
	uint32_t data_len;		/* its length */
	uint32_t len;			/* the packet's (m_pkthdr.len) */
	const struct mbuf *next;	/* the rest of the chain */
	uint32_t flags;			/* ZBPF_PKT_* */
	uint16_t vlan_tag;		/* with ZBPF_PKT_VLANTAG */
	struct zbpf_bintime tstamp;	/* with ZBPF_PKT_TSTAMP_* */
};
#define ZBPF_PKT_INBOUND 0x01		/* entering, not leaving */
#define ZBPF_PKT_PROMISC 0x02		/* M_PROMISC */
#define ZBPF_PKT_RCVIF 0x04		/* m_pkthdr.rcvif is set */
#define ZBPF_PKT_VLANTAG 0x08		/* M_VLANTAG: the tag was stripped */
#define ZBPF_PKT_TSTAMP_WALL 0x10	/* M_TSTMP: wall-clock */
#define ZBPF_PKT_TSTAMP_UPTIME 0x20	/* MTAG_BPF_TIMESTAMP: uptime */
/* The most packets of a driver's m_nextpkt list one zbpf_rs_tap call
 * takes: the wrapper describes a list this many at a time. */
#define ZBPF_TAP_BATCH 8

/* Packets on a hooked interface, for the tap given to
 * zbpf_kpi_tap_install: one packet, or up to ZBPF_TAP_BATCH packets of a
 * driver's list, in order. Runs in the network epoch; never frees or
 * changes the chains. Returns a mask: bit i set, the wrapper clears
 * M_PROMISC on packet i (zbpf's own feedback mark). */
uint32_t zbpf_rs_tap(void *tap, const struct zbpf_packet *pkts, uint32_t n);

/* ifnet_departure_event (the interface's hook goes too). */
void zbpf_rs_ifnet_departure(struct ifnet *ifp);

/* Sysctls. Integer knobs are ZBPF_SYSCTL_*. */
#define ZBPF_SYSCTL_BUFSIZE 1
#define ZBPF_SYSCTL_MAXBUFSIZE 2
#define ZBPF_SYSCTL_MAXINSNS 3
#define ZBPF_SYSCTL_ZEROCOPY_ENABLE 4
#define ZBPF_SYSCTL_OPTIMIZE_WRITERS 5
#define ZBPF_SYSCTL_JIT_ENABLE 6
int zbpf_rs_sysctl_get(int knob);
int zbpf_rs_sysctl_set(int knob, int value);
/* net.*.stats: fills buf (capacity len) with struct xbpf_d records, sets
 * *needed to the bytes required. ENOMEM if buf is too small; with buf NULL,
 * only *needed. */
int zbpf_rs_stats(uint8_t *buf, size_t len, size_t *needed);
/* A write to net.*.stats. */
int zbpf_rs_stats_write(const uint8_t *buf, size_t len);

#endif /* ZBPF_KPI_H */

/*
 * kpi_sched.c: the emulated kernel's CPUs and threads, the emulated process
 * (ukk_proc0, its credential, prison0 and vnet0), mutex(9) and sx(9) with
 * WITNESS-style checks, the network epoch, sleep(9)/wakeup(9), pause(9),
 * callout(9) with its callout thread, and the uptime and boot time.
 *
 * Every wait sleeps on the host's one scheduler lock and condition
 * (uh_sched_*), and every shared structure here is protected by that lock.
 * Signals are not emulated: PCATCH and C_CATCH sleeps never return EINTR or
 * ERESTART.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/sx.h>
#include <sys/proc.h>
#include <sys/jail.h>
#include <sys/ucred.h>
#include <sys/epoch.h>
#include <sys/callout.h>
#include <sys/time.h>

#include <net/vnet.h>

#include <vm/vm.h>
#include <vm/pmap.h>
#include <vm/vm_map.h>

#include "ukld.h"

/* lock_classes[] indexes, as FreeBSD numbers them. */
#define	UKK_CLASS_MTX	1	/* sleep mutex */
#define	UKK_CLASS_SX	2

#define	UKK_MAXHELD	16	/* locks one thread holds at once */
#define	UKK_MAXORDERS	256	/* (held, acquired) lock name pairs seen */

/*
 * A kernel thread: struct thread first, so curthread (%gs:0) points at it,
 * then what the emulation keeps per thread.
 */
struct ukk_thread {
	struct thread	ut_td;
	LIST_ENTRY(ukk_thread) ut_link;	/* ukk_threads (sched lock) */
	struct lock_object *ut_held[UKK_MAXHELD];
	int		ut_nheld;
	int		ut_epochnest;
	uint64_t	ut_epochseq;	/* outermost section's start (sched
					   lock); 0 outside the epoch */
};

static LIST_HEAD(, ukk_thread) ukk_threads = LIST_HEAD_INITIALIZER(ukk_threads);
static int ukk_next_tid = 100001;

static struct ukk_thread *
ukk_curthread(void)
{
	return ((struct ukk_thread *)curthread);
}

/* ---------------------------------------------------------------------- */
/* The emulated process: one process, one credential, one vnet            */

static struct vnet ukk_vnet0_store = {
	.vnet_magic_n = VNET_MAGIC_N,
	/* VNET(x) addresses the module's own set_vnet storage. */
	.vnet_data_base = 0,
};
struct vnet *vnet0 = &ukk_vnet0_store;

struct prison prison0 = {
	.pr_ref = 1,
	.pr_vnet = &ukk_vnet0_store,
};

static struct ucred ukk_cred0 = {
	.cr_ref = 1,
	.cr_users = 1,
	.cr_prison = &prison0,
};

static struct vmspace ukk_vmspace0;

struct proc ukk_proc0 = {
	.p_ucred = &ukk_cred0,
	.p_vmspace = &ukk_vmspace0,
	.p_state = PRS_NORMAL,
	.p_comm = "ukld",
};

static void
ukk_proc0_init(void)
{
	static int done;

	uh_sched_lock();
	if (!done) {
		done = 1;
		ukk_proc0.p_pid = uh_getpid();
		TAILQ_INIT(&ukk_proc0.p_threads);
		mtx_init(&ukk_proc0.p_mtx, "process lock", NULL,
		    MTX_DEF | MTX_DUPOK);
		mtx_init(&prison0.pr_mtx, "jail mutex", NULL, MTX_DEF);
	}
	uh_sched_unlock();
}

/* ---------------------------------------------------------------------- */
/* CPUs                                                                   */

void *
ukk_cpu_setup(void *block, int cpu)
{
	struct pcpu *pc = block;
	struct ukk_thread *ut;
	struct thread *td;

	CTASSERT(sizeof(struct pcpu) <= PAGE_SIZE);
	ukk_proc0_init();
	/* Lock words keep flags in the low 5 bits of the owner pointer. */
	ut = uh_alloc(sizeof(*ut), CACHE_LINE_SIZE);
	if (ut == NULL)
		panic("ukld: no memory for a thread");
	td = &ut->ut_td;
	td->td_proc = &ukk_proc0;
	td->td_ucred = td->td_realucred = &ukk_cred0;
	td->td_tid = atomic_fetchadd_int(&ukk_next_tid, 1);
	td->td_oncpu = td->td_lastcpu = cpu;
	__builtin_memcpy(td->td_name, "ukld", sizeof("ukld"));

	bzero(pc, sizeof(*pc));
	pc->pc_curthread = td;
	pc->pc_prvspace = pc;
	pc->pc_cpuid = cpu;
	/* counter(9) values are offsets into the block: zpcpu_get(c) is
	 * block + c, where the module's %gs-relative add lands too. */
	pc->pc_zpcpu_offset = (uintptr_t)block;

	uh_sched_lock();
	LIST_INSERT_HEAD(&ukk_threads, ut, ut_link);
	uh_sched_unlock();
	return (td);
}

void
ukk_cpu_teardown(void *block)
{
	struct pcpu *pc = block;
	struct ukk_thread *ut = (struct ukk_thread *)pc->pc_curthread;
	int i;

	for (i = 0; i < ut->ut_nheld; i++)
		uh_violation("thread %d exited holding lock \"%s\"",
		    ut->ut_td.td_tid, ut->ut_held[i]->lo_name);
	if (ut->ut_epochnest != 0)
		uh_violation("thread %d exited inside the network epoch",
		    ut->ut_td.td_tid);
	uh_sched_lock();
	LIST_REMOVE(ut, ut_link);
	uh_sched_broadcast();	/* epoch waiters no longer wait for it */
	uh_sched_unlock();
	pc->pc_curthread = NULL;
	uh_free(ut);
}

/* ---------------------------------------------------------------------- */
/* Lock bookkeeping: held locks, lock order                               */

struct ukk_order {
	const char	*first;		/* held ... */
	const char	*second;	/* ... when this was acquired */
	int		reported;
};

static struct ukk_order ukk_orders[UKK_MAXORDERS];
static int ukk_norders;

static struct ukk_order *
ukk_order_find(const char *first, const char *second)
{
	int i;

	for (i = 0; i < ukk_norders; i++) {
		if ((strcmp(ukk_orders[i].first, first) == 0) &&
		    (strcmp(ukk_orders[i].second, second) == 0))
			return (&ukk_orders[i]);
	}
	return (NULL);
}

/*
 * Before acquiring `lo`: records (held, lo) for every lock held, by name,
 * and reports, once per pair of names, an acquisition in the order
 * opposite to one seen before (as WITNESS does).
 */
static void
ukk_lock_order(struct ukk_thread *ut, struct lock_object *lo)
{
	struct ukk_order *rev;
	const char *held;
	int i, report;

	for (i = 0; i < ut->ut_nheld; i++) {
		held = ut->ut_held[i]->lo_name;
		if (strcmp(held, lo->lo_name) == 0)
			continue;
		report = 0;
		uh_sched_lock();
		if (ukk_order_find(held, lo->lo_name) == NULL) {
			rev = ukk_order_find(lo->lo_name, held);
			if (rev != NULL && !rev->reported) {
				rev->reported = 1;
				report = 1;
			}
			if (ukk_norders < UKK_MAXORDERS) {
				ukk_orders[ukk_norders].first = held;
				ukk_orders[ukk_norders].second = lo->lo_name;
				ukk_orders[ukk_norders].reported = report;
				ukk_norders++;
			}
		}
		uh_sched_unlock();
		if (report)
			uh_violation("lock order reversal: \"%s\" acquired "
			    "while holding \"%s\"; the opposite order was "
			    "seen before", lo->lo_name, held);
	}
}

static void
ukk_held_push(struct ukk_thread *ut, struct lock_object *lo)
{
	if (ut->ut_nheld == UKK_MAXHELD)
		panic("ukld: thread %d holds more than %d locks",
		    ut->ut_td.td_tid, UKK_MAXHELD);
	ut->ut_held[ut->ut_nheld++] = lo;
}

static void
ukk_held_pop(struct ukk_thread *ut, struct lock_object *lo)
{
	int i;

	for (i = ut->ut_nheld - 1; i >= 0; i--) {
		if (ut->ut_held[i] == lo) {
			for (; i < ut->ut_nheld - 1; i++)
				ut->ut_held[i] = ut->ut_held[i + 1];
			ut->ut_nheld--;
			return;
		}
	}
}

static void
ukk_lock_init(struct lock_object *lo, const char *name, int class, int flags,
    int isnew)
{
	if ((lo->lo_flags & LO_INITIALIZED) != 0 && !isnew)
		uh_violation("lock \"%s\" (%p) initialized twice", name, lo);
	lo->lo_name = name;
	lo->lo_flags = flags | LO_INITIALIZED | (class << LO_CLASSSHIFT);
	lo->lo_data = 0;
	lo->lo_witness = NULL;
}

/*
 * A lock word: `unowned` when free, else the owner thread with flag bits.
 * A contended locker sets `waiters` and sleeps; the unlocker that sees
 * `waiters` wakes everyone, and they race again.
 */
static void
ukk_word_lock(volatile uintptr_t *w, uintptr_t unowned, uintptr_t waiters,
    uintptr_t tid)
{
	uintptr_t v;

	for (;;) {
		v = unowned;
		if (__atomic_compare_exchange_n(w, &v, tid, 0,
		    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		uh_sched_lock();
		v = __atomic_load_n(w, __ATOMIC_RELAXED);
		if (v != unowned && ((v & waiters) != 0 ||
		    __atomic_compare_exchange_n(w, &v, v | waiters, 0,
		    __ATOMIC_RELAXED, __ATOMIC_RELAXED)))
			(void)uh_sched_wait(0);
		uh_sched_unlock();
	}
}

static void
ukk_word_unlock(volatile uintptr_t *w, uintptr_t unowned, uintptr_t waiters)
{
	if ((__atomic_exchange_n(w, unowned, __ATOMIC_RELEASE) & waiters) != 0) {
		uh_sched_lock();
		uh_sched_broadcast();
		uh_sched_unlock();
	}
}

/* ---------------------------------------------------------------------- */
/* mutex(9): MTX_DEF only                                                 */

static struct mtx *
ukk_mtx(volatile uintptr_t *c)
{
	return (__containerof(c, struct mtx, mtx_lock));
}

static int
ukk_mtx_owned(struct mtx *m)
{
	return ((m->mtx_lock & ~MTX_FLAGMASK) == (uintptr_t)curthread);
}

static void
ukk_mtx_lock(struct mtx *m)
{
	struct ukk_thread *ut = ukk_curthread();

	if ((m->lock_object.lo_flags & LO_INITIALIZED) == 0) {
		uh_violation("mtx_lock of an uninitialized or destroyed "
		    "mutex %p", m);
		return;
	}
	if (ukk_mtx_owned(m)) {
		if ((m->lock_object.lo_flags & LO_RECURSABLE) == 0)
			uh_violation("recursed on non-recursive mutex \"%s\"",
			    m->lock_object.lo_name);
		m->mtx_recurse++;
		__atomic_or_fetch(&m->mtx_lock, MTX_RECURSED, __ATOMIC_RELAXED);
		return;
	}
	ukk_lock_order(ut, &m->lock_object);
	ukk_word_lock(&m->mtx_lock, MTX_UNOWNED, MTX_CONTESTED,
	    (uintptr_t)&ut->ut_td);
	ukk_held_push(ut, &m->lock_object);
}

static void
ukk_mtx_unlock(struct mtx *m)
{
	if (!ukk_mtx_owned(m)) {
		uh_violation("mtx_unlock of mutex \"%s\" %s",
		    m->lock_object.lo_name, m->mtx_lock == MTX_UNOWNED ?
		    "that is not locked" : "owned by another thread");
		return;
	}
	if (m->mtx_recurse != 0) {
		if (--m->mtx_recurse == 0)
			__atomic_and_fetch(&m->mtx_lock, ~(uintptr_t)MTX_RECURSED,
			    __ATOMIC_RELAXED);
		return;
	}
	ukk_held_pop(ukk_curthread(), &m->lock_object);
	ukk_word_unlock(&m->mtx_lock, MTX_UNOWNED, MTX_CONTESTED);
}

void
_mtx_init(volatile uintptr_t *c, const char *name, const char *type __unused,
    int opts)
{
	struct mtx *m = ukk_mtx(c);
	int flags = 0;

	if ((opts & MTX_SPIN) != 0)
		uh_violation("mtx_init(\"%s\", MTX_SPIN): spin mutexes are not "
		    "emulated; a sleep mutex is made", name);
	if ((opts & MTX_RECURSE) != 0)
		flags |= LO_RECURSABLE;
	if ((opts & MTX_DUPOK) != 0)
		flags |= LO_DUPOK;
	ukk_lock_init(&m->lock_object, name, UKK_CLASS_MTX, flags,
	    opts & MTX_NEW);
	m->mtx_lock = MTX_UNOWNED;
}

void
_mtx_destroy(volatile uintptr_t *c)
{
	struct mtx *m = ukk_mtx(c);

	if ((m->lock_object.lo_flags & LO_INITIALIZED) == 0)
		uh_violation("mtx_destroy of an uninitialized or destroyed "
		    "mutex %p", m);
	else if (ukk_mtx_owned(m)) {
		/* Allowed, as in FreeBSD: the owner destroys it locked. */
		if ((m->mtx_lock & (MTX_RECURSED | MTX_CONTESTED)) != 0)
			uh_violation("mtx_destroy of mutex \"%s\" that is "
			    "recursed or has waiters", m->lock_object.lo_name);
		ukk_held_pop(ukk_curthread(), &m->lock_object);
	} else if (m->mtx_lock != MTX_UNOWNED)
		uh_violation("mtx_destroy of mutex \"%s\" held by another "
		    "thread", m->lock_object.lo_name);
	m->mtx_lock = MTX_DESTROYED;
	m->lock_object.lo_flags &= ~LO_INITIALIZED;
}

void
__mtx_lock_flags(volatile uintptr_t *c, int opts __unused,
    const char *file __unused, int line __unused)
{
	ukk_mtx_lock(ukk_mtx(c));
}

void
__mtx_unlock_flags(volatile uintptr_t *c, int opts __unused,
    const char *file __unused, int line __unused)
{
	ukk_mtx_unlock(ukk_mtx(c));
}

/* ---------------------------------------------------------------------- */
/* sx(9): exclusive locking only                                          */

static int
ukk_sx_xowned(struct sx *sx)
{
	return (SX_OWNER(sx->sx_lock) == (uintptr_t)curthread);
}

static void
ukk_sx_xlock(struct sx *sx)
{
	struct ukk_thread *ut = ukk_curthread();

	if ((sx->lock_object.lo_flags & LO_INITIALIZED) == 0) {
		uh_violation("sx_xlock of an uninitialized or destroyed sx %p",
		    sx);
		return;
	}
	if (ukk_sx_xowned(sx)) {
		if ((sx->lock_object.lo_flags & LO_RECURSABLE) == 0)
			uh_violation("recursed on non-recursive sx \"%s\"",
			    sx->lock_object.lo_name);
		sx->sx_recurse++;
		__atomic_or_fetch(&sx->sx_lock, SX_LOCK_RECURSED,
		    __ATOMIC_RELAXED);
		return;
	}
	ukk_lock_order(ut, &sx->lock_object);
	ukk_word_lock(&sx->sx_lock, SX_LOCK_UNLOCKED, SX_LOCK_EXCLUSIVE_WAITERS,
	    (uintptr_t)&ut->ut_td);
	ukk_held_push(ut, &sx->lock_object);
}

static void
ukk_sx_xunlock(struct sx *sx)
{
	if (!ukk_sx_xowned(sx)) {
		uh_violation("sx_xunlock of sx \"%s\" %s",
		    sx->lock_object.lo_name, sx->sx_lock == SX_LOCK_UNLOCKED ?
		    "that is not locked" : "not exclusively held by the thread");
		return;
	}
	if (sx->sx_recurse != 0) {
		if (--sx->sx_recurse == 0)
			__atomic_and_fetch(&sx->sx_lock,
			    ~(uintptr_t)SX_LOCK_RECURSED, __ATOMIC_RELAXED);
		return;
	}
	ukk_held_pop(ukk_curthread(), &sx->lock_object);
	ukk_word_unlock(&sx->sx_lock, SX_LOCK_UNLOCKED,
	    SX_LOCK_EXCLUSIVE_WAITERS);
}

void
sx_init_flags(struct sx *sx, const char *description, int opts)
{
	int flags = LO_SLEEPABLE | LO_UPGRADABLE;

	if ((opts & SX_RECURSE) != 0)
		flags |= LO_RECURSABLE;
	if ((opts & SX_DUPOK) != 0)
		flags |= LO_DUPOK;
	ukk_lock_init(&sx->lock_object, description, UKK_CLASS_SX, flags,
	    opts & SX_NEW);
	sx->sx_lock = SX_LOCK_UNLOCKED;
}

void
sx_destroy(struct sx *sx)
{
	if ((sx->lock_object.lo_flags & LO_INITIALIZED) == 0)
		uh_violation("sx_destroy of an uninitialized or destroyed "
		    "sx %p", sx);
	else if (sx->sx_lock != SX_LOCK_UNLOCKED) {
		uh_violation("sx_destroy of sx \"%s\" that is still held",
		    sx->lock_object.lo_name);
		if (ukk_sx_xowned(sx))
			ukk_held_pop(ukk_curthread(), &sx->lock_object);
	}
	sx->sx_lock = SX_LOCK_DESTROYED;
	sx->lock_object.lo_flags &= ~LO_INITIALIZED;
}

int
_sx_xlock(struct sx *sx, int opts __unused, const char *file __unused,
    int line __unused)
{
	ukk_may_sleep("sx_xlock", NULL);
	ukk_sx_xlock(sx);
	return (0);
}

void
_sx_xunlock(struct sx *sx, const char *file __unused, int line __unused)
{
	ukk_sx_xunlock(sx);
}

/* The interlock of a sleep or the lock of a callout, by its class. */
static int
ukk_lock_owned(struct lock_object *lo)
{
	switch (LO_CLASSINDEX(lo)) {
	case UKK_CLASS_MTX:
		return (ukk_mtx_owned(__containerof(lo, struct mtx,
		    lock_object)));
	case UKK_CLASS_SX:
		return (ukk_sx_xowned(__containerof(lo, struct sx,
		    lock_object)));
	}
	return (0);
}

static void
ukk_lock_acquire(struct lock_object *lo)
{
	if (LO_CLASSINDEX(lo) == UKK_CLASS_SX)
		ukk_sx_xlock(__containerof(lo, struct sx, lock_object));
	else
		ukk_mtx_lock(__containerof(lo, struct mtx, lock_object));
}

static void
ukk_lock_release(struct lock_object *lo)
{
	if (LO_CLASSINDEX(lo) == UKK_CLASS_SX)
		ukk_sx_xunlock(__containerof(lo, struct sx, lock_object));
	else
		ukk_mtx_unlock(__containerof(lo, struct mtx, lock_object));
}

/* ---------------------------------------------------------------------- */
/* The sleeping rules                                                     */

static void
ukk_check_sleep(const char *what, const char *wmesg, const void *interlock)
{
	struct ukk_thread *ut = ukk_curthread();
	struct lock_object *lo;
	int i;

	if (wmesg == NULL)
		wmesg = "";
	if (ut->ut_td.td_no_sleeping != 0)
		uh_violation("%s%s where sleeping is prohibited (a callout "
		    "handler)", what, wmesg);
	for (i = 0; i < ut->ut_nheld; i++) {
		lo = ut->ut_held[i];
		if (lo != interlock && LO_CLASSINDEX(lo) == UKK_CLASS_MTX)
			uh_violation("%s%s with non-sleepable mutex \"%s\" "
			    "held", what, wmesg, lo->lo_name);
	}
	if (ut->ut_epochnest != 0)
		uh_violation("%s%s inside the network epoch", what, wmesg);
}

void
ukk_may_sleep(const char *what, const void *interlock)
{
	ukk_check_sleep(what, NULL, interlock);
}

int
ukk_in_epoch(void)
{
	return (ukk_curthread()->ut_epochnest != 0);
}

/* ---------------------------------------------------------------------- */
/* The network epoch                                                      */

struct epoch {
	const char	*e_name;
};

static struct epoch ukk_net_epoch = { "net_epoch_preempt" };
epoch_t net_epoch_preempt = &ukk_net_epoch;

/* Sections are numbered as they begin (sched lock). */
static uint64_t ukk_epoch_gen;
static int ukk_epoch_waiters;

static void
ukk_epoch_check(epoch_t epoch, const char *what)
{
	if (epoch != &ukk_net_epoch)
		uh_violation("%s on unknown epoch %p", what, epoch);
}

void
_epoch_enter_preempt(epoch_t epoch, epoch_tracker_t et)
{
	struct ukk_thread *ut = ukk_curthread();

	ukk_epoch_check(epoch, "epoch_enter_preempt");
	et->et_td = &ut->ut_td;
	if (ut->ut_epochnest++ == 0) {
		uh_sched_lock();
		ut->ut_epochseq = ++ukk_epoch_gen;
		uh_sched_unlock();
	}
}

void
_epoch_exit_preempt(epoch_t epoch, epoch_tracker_t et)
{
	struct ukk_thread *ut = ukk_curthread();

	ukk_epoch_check(epoch, "epoch_exit_preempt");
	if (ut->ut_epochnest == 0) {
		uh_violation("epoch_exit_preempt outside an epoch section");
		return;
	}
	if (et->et_td != &ut->ut_td)
		uh_violation("epoch_exit_preempt with a tracker this thread "
		    "did not enter");
	et->et_td = NULL;
	if (--ut->ut_epochnest == 0) {
		uh_sched_lock();
		ut->ut_epochseq = 0;
		if (ukk_epoch_waiters != 0)
			uh_sched_broadcast();
		uh_sched_unlock();
	}
}

/* Whether a section other than the caller's began by number `gen`. */
static int
ukk_epoch_busy(struct ukk_thread *self, uint64_t gen)
{
	struct ukk_thread *ut;

	LIST_FOREACH(ut, &ukk_threads, ut_link) {
		if (ut != self && ut->ut_epochseq != 0 && ut->ut_epochseq <= gen)
			return (1);
	}
	return (0);
}

void
epoch_wait_preempt(epoch_t epoch)
{
	struct ukk_thread *ut = ukk_curthread();
	uint64_t gen;

	ukk_epoch_check(epoch, "epoch_wait_preempt");
	ukk_may_sleep("epoch_wait_preempt", NULL);
	uh_sched_lock();
	gen = ukk_epoch_gen;
	ukk_epoch_waiters++;
	while (ukk_epoch_busy(ut, gen))
		(void)uh_sched_wait(0);
	ukk_epoch_waiters--;
	uh_sched_unlock();
}

/* ---------------------------------------------------------------------- */
/* Time                                                                   */

int hz = 1000;
sbintime_t tick_sbt = SBT_1S / 1000;

static uint64_t ukk_boottime_ns;	/* wall clock time at uptime 0 */
/* The same as a bintime, kept as FreeBSD's timehands keep it, so that
 * getboottimebin copies it instead of converting on every call. */
static struct bintime ukk_boottimebin;

static sbintime_t
ukk_sbinuptime(void)
{
	return (nstosbt((int64_t)uh_uptime_ns()));
}

static void
ukk_ns_to_bintime(uint64_t ns, struct bintime *bt)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	timespec2bintime(&ts, bt);
}

/* The clock's seconds and nanoseconds straight into a bintime: the tap
 * reads it for every packet. */
void
binuptime(struct bintime *bt)
{
	struct timespec ts;
	uk_i64 sec, nsec;

	uh_uptime_parts(&sec, &nsec);
	ts.tv_sec = (time_t)sec;
	ts.tv_nsec = (long)nsec;
	timespec2bintime(&ts, bt);
}

void
getbinuptime(struct bintime *bt)
{
	binuptime(bt);
}

void
getboottimebin(struct bintime *boottimebin)
{
	*boottimebin = ukk_boottimebin;
}

/* When a timeout of `sbt` armed now ends, as callout_reset_sbt does. */
static sbintime_t
ukk_when(sbintime_t sbt, int flags)
{
	sbintime_t now;

	if ((flags & C_ABSOLUTE) != 0)
		return (sbt);
	if ((flags & C_HARDCLOCK) != 0 && sbt < tick_sbt)
		sbt = tick_sbt;
	now = ukk_sbinuptime();
	if ((flags & C_HARDCLOCK) != 0)
		now -= now % tick_sbt;	/* the last hardclock() */
	return (now + sbt);
}

/* The uptime (ns) a sleep of `sbt` ends at; 0 for no timeout. */
static uint64_t
ukk_deadline(sbintime_t sbt, int flags)
{
	if (sbt == 0)
		return (0);
	return ((uint64_t)sbttons(ukk_when(sbt, flags)) + 1);
}

/* ---------------------------------------------------------------------- */
/* sleep(9), wakeup(9), pause(9)                                          */

struct ukk_sleeper {
	TAILQ_ENTRY(ukk_sleeper) s_link;
	const void	*s_chan;
	int		s_woken;
};

static TAILQ_HEAD(, ukk_sleeper) ukk_sleepq = TAILQ_HEAD_INITIALIZER(ukk_sleepq);

/*
 * Sleeps on `chan` until wakeup(chan) or the deadline: 0 or EWOULDBLOCK.
 * The sleeper is queued before the interlock is dropped, so a wakeup by
 * the interlock's next owner is never lost.
 */
static int
ukk_sleep_on(const void *chan, struct lock_object *lock, int pri,
    uint64_t deadline)
{
	struct ukk_sleeper s = { .s_chan = chan };
	int error = 0;

	uh_sched_lock();
	TAILQ_INSERT_TAIL(&ukk_sleepq, &s, s_link);
	uh_sched_unlock();
	if (lock != NULL)
		ukk_lock_release(lock);
	uh_sched_lock();
	while (!s.s_woken) {
		if (uh_sched_wait(deadline) && !s.s_woken) {
			error = EWOULDBLOCK;
			break;
		}
	}
	TAILQ_REMOVE(&ukk_sleepq, &s, s_link);
	uh_sched_unlock();
	if (lock != NULL && (pri & PDROP) == 0)
		ukk_lock_acquire(lock);
	return (error);
}

int
_sleep(const void *chan, struct lock_object *lock, int pri, const char *wmesg,
    sbintime_t sbt, sbintime_t pr __unused, int flags)
{
	ukk_check_sleep("sleep ", wmesg, lock);
	if (lock == NULL && sbt == 0)
		uh_violation("sleep %s without a lock and without a timeout",
		    wmesg);
	if (lock != NULL) {
		if (!ukk_lock_owned(lock)) {
			uh_violation("sleep %s with interlock \"%s\" not held",
			    wmesg, lock->lo_name);
			lock = NULL;
		} else if (lock->lo_data != 0)
			uh_violation("sleep %s with interlock \"%s\" recursed",
			    wmesg, lock->lo_name);
	}
	return (ukk_sleep_on(chan, lock, pri, ukk_deadline(sbt, flags)));
}

void
wakeup(const void *chan)
{
	struct ukk_sleeper *s;
	int n = 0;

	uh_sched_lock();
	TAILQ_FOREACH(s, &ukk_sleepq, s_link) {
		if (s->s_chan == chan) {
			s->s_woken = 1;
			n++;
		}
	}
	if (n != 0)
		uh_sched_broadcast();
	uh_sched_unlock();
}

int
pause_sbt(const char *wmesg, sbintime_t sbt, sbintime_t pr __unused,
    int flags)
{
	ukk_check_sleep("pause ", wmesg, NULL);
	if (sbt == 0)
		sbt = tick_sbt;
	/* Nothing wakes a thread's own channel: it sleeps out the time. */
	return (ukk_sleep_on(curthread, NULL, 0, ukk_deadline(sbt, flags)));
}

/* ---------------------------------------------------------------------- */
/* callout(9)                                                             */

/* Pending callouts by time, then by arming order (sched lock). */
static struct callout_tailq ukk_callouts = TAILQ_HEAD_INITIALIZER(ukk_callouts);
/* The callout the callout thread is running, as FreeBSD's cc_exec. */
static struct callout *ukk_cc_curr;
static bool ukk_cc_cancel;	/* don't run ukk_cc_curr after its lock */
static bool ukk_cc_waiting;	/* a drain waits for ukk_cc_curr */
static struct ukk_thread *ukk_softclock_td;

/* callout_init on a callout still in use would corrupt the queue. */
static void
ukk_callout_reinit_check(struct callout *c)
{
	uh_sched_lock();
	if ((c->c_iflags & CALLOUT_PENDING) != 0) {
		struct callout *p;

		TAILQ_FOREACH(p, &ukk_callouts, c_links.tqe) {
			if (p == c) {
				TAILQ_REMOVE(&ukk_callouts, c, c_links.tqe);
				uh_violation("callout_init of pending callout "
				    "%p", c);
				break;
			}
		}
	}
	if (ukk_cc_curr == c)
		uh_violation("callout_init of running callout %p", c);
	uh_sched_unlock();
}

void
callout_init(struct callout *c, int mpsafe)
{
	ukk_callout_reinit_check(c);
	bzero(c, sizeof(*c));
	if (!mpsafe)
		uh_violation("callout_init(%p, 0) needs Giant, which is not "
		    "emulated; the callout runs MP-safe", c);
	c->c_iflags = CALLOUT_RETURNUNLOCKED;
}

void
_callout_init_lock(struct callout *c, struct lock_object *lock, int flags)
{
	ukk_callout_reinit_check(c);
	bzero(c, sizeof(*c));
	if ((flags & ~(CALLOUT_RETURNUNLOCKED | CALLOUT_SHAREDLOCK)) != 0)
		uh_violation("callout_init_lock: bad flags %#x", flags);
	if (lock != NULL && LO_CLASSINDEX(lock) != UKK_CLASS_MTX)
		uh_violation("callout_init_lock with lock \"%s\", which is "
		    "not a mutex", lock->lo_name);
	c->c_lock = lock;
	c->c_iflags = flags & (CALLOUT_RETURNUNLOCKED | CALLOUT_SHAREDLOCK);
}

int
callout_reset_sbt_on(struct callout *c, sbintime_t sbt, sbintime_t prec,
    void (*ftn)(void *), void *arg, int cpu, int flags)
{
	struct callout *p;
	sbintime_t when;
	int cancelled = 0;

	when = ukk_when(sbt, flags);
	uh_sched_lock();
	if (ukk_cc_curr == c) {
		/* Running: if it still waits for its lock, it won't run. */
		if (c->c_lock != NULL && !ukk_cc_cancel)
			cancelled = ukk_cc_cancel = true;
		if (ukk_cc_waiting) {
			/* Being drained: not rescheduled. */
			uh_sched_unlock();
			return (cancelled);
		}
	}
	if ((c->c_iflags & CALLOUT_PENDING) != 0) {
		TAILQ_REMOVE(&ukk_callouts, c, c_links.tqe);
		c->c_iflags &= ~CALLOUT_PENDING;
		c->c_flags &= ~CALLOUT_ACTIVE;
		cancelled = 1;
	}
	c->c_time = when;
	c->c_precision = prec;
	c->c_func = ftn;
	c->c_arg = arg;
	if (cpu != -1)
		c->c_cpu = cpu;
	TAILQ_FOREACH_REVERSE(p, &ukk_callouts, callout_tailq, c_links.tqe) {
		if (p->c_time <= when)
			break;
	}
	if (p != NULL)
		TAILQ_INSERT_AFTER(&ukk_callouts, p, c, c_links.tqe);
	else
		TAILQ_INSERT_HEAD(&ukk_callouts, c, c_links.tqe);
	c->c_iflags |= CALLOUT_PENDING;
	c->c_iflags &= ~CALLOUT_PROCESSED;
	c->c_flags |= CALLOUT_ACTIVE;
	if (TAILQ_FIRST(&ukk_callouts) == c)
		uh_sched_broadcast();
	uh_sched_unlock();
	return (cancelled);
}

/*
 * As FreeBSD: 1 if a pending callout was stopped (or, holding its lock, a
 * run that waited for it was cancelled), 0 if it is running and could not
 * be stopped, -1 if it was neither pending nor running. CS_DRAIN first
 * waits for a running callout to return.
 */
int
_callout_stop_safe(struct callout *c, int flags)
{
	struct ukk_thread *ut = ukk_curthread();
	int cancelled, drain, use_lock;

	drain = (flags & CS_DRAIN) != 0;
	if (drain)
		ukk_may_sleep("callout_drain", NULL);
	use_lock = !drain && c->c_lock != NULL;
	if (use_lock && !ukk_lock_owned(c->c_lock))
		uh_violation("callout_stop of callout %p without its lock "
		    "\"%s\"", c, c->c_lock->lo_name);
	uh_sched_lock();
	if (ukk_cc_curr == c) {
		if (drain) {
			/* The callout thread can't wait for itself. */
			while (ukk_cc_curr == c && ut != ukk_softclock_td) {
				ukk_cc_waiting = true;
				(void)uh_sched_wait(0);
			}
		} else if (use_lock && !ukk_cc_cancel) {
			c->c_flags &= ~CALLOUT_ACTIVE;
			ukk_cc_cancel = true;
			uh_sched_unlock();
			return (1);
		}
		c->c_flags &= ~CALLOUT_ACTIVE;
		cancelled = 0;
	} else
		cancelled = 1;
	if ((c->c_iflags & CALLOUT_PENDING) == 0) {
		if (ukk_cc_curr != c)
			cancelled = -1;
		uh_sched_unlock();
		return (cancelled);
	}
	TAILQ_REMOVE(&ukk_callouts, c, c_links.tqe);
	c->c_iflags &= ~CALLOUT_PENDING;
	c->c_flags &= ~CALLOUT_ACTIVE;
	uh_sched_unlock();
	return (cancelled);
}

/*
 * The callout thread: runs due callouts in time order, each with its lock
 * held if it has one, unless it was stopped or reset while the thread
 * waited for that lock. Handlers may not sleep.
 */
static void
ukk_softclock(void *arg __unused)
{
	struct ukk_thread *ut = ukk_curthread();
	struct lock_object *lock;
	struct callout *c;
	void (*func)(void *);
	void *farg;
	short iflags;
	bool skip;
	int i;

	uh_sched_lock();
	ukk_softclock_td = ut;
	for (;;) {
		c = TAILQ_FIRST(&ukk_callouts);
		if (c == NULL) {
			(void)uh_sched_wait(0);
			continue;
		}
		if (c->c_time > ukk_sbinuptime()) {
			(void)uh_sched_wait((uint64_t)sbttons(c->c_time) + 1);
			continue;
		}
		TAILQ_REMOVE(&ukk_callouts, c, c_links.tqe);
		c->c_iflags &= ~CALLOUT_PENDING;
		func = c->c_func;
		farg = c->c_arg;
		lock = c->c_lock;
		iflags = c->c_iflags;
		ukk_cc_curr = c;
		ukk_cc_cancel = false;
		uh_sched_unlock();

		skip = false;
		if (lock != NULL) {
			ukk_lock_acquire(lock);
			uh_sched_lock();
			skip = ukk_cc_cancel;
			ukk_cc_cancel = true;	/* can't be stopped now */
			uh_sched_unlock();
			if (skip)
				ukk_lock_release(lock);
		}
		if (!skip) {
			ut->ut_td.td_no_sleeping++;
			func(farg);
			ut->ut_td.td_no_sleeping--;
			if (lock != NULL &&
			    (iflags & CALLOUT_RETURNUNLOCKED) == 0)
				ukk_lock_release(lock);
			for (i = 0; i < ut->ut_nheld; i++)
				uh_violation("callout function %p returned "
				    "holding lock \"%s\"", (void *)func,
				    ut->ut_held[i]->lo_name);
		}

		uh_sched_lock();
		ukk_cc_curr = NULL;
		if (ukk_cc_waiting) {
			ukk_cc_waiting = false;
			uh_sched_broadcast();
		}
	}
}

/* ---------------------------------------------------------------------- */
/* Boot and end of run                                                    */

void
ukk_sched_init(void)
{
	static int started;
	int first;

	uh_sched_lock();
	first = !started;
	started = 1;
	uh_sched_unlock();
	if (!first)
		return;
	ukk_boottime_ns = uh_walltime_ns() - uh_uptime_ns();
	ukk_ns_to_bintime(ukk_boottime_ns, &ukk_boottimebin);
	if (uh_thread_start(ukk_softclock, NULL) != 0)
		panic("ukld: cannot start the callout thread");
}

int
ukk_sched_check_idle(void)
{
	struct ukk_thread *ut;
	struct callout *c;
	int i, pending = 0;

	uh_sched_lock();
	LIST_FOREACH(ut, &ukk_threads, ut_link) {
		for (i = 0; i < ut->ut_nheld; i++)
			uh_violation("lock \"%s\" still held by thread %d at "
			    "the end of the run", ut->ut_held[i]->lo_name,
			    ut->ut_td.td_tid);
	}
	TAILQ_FOREACH(c, &ukk_callouts, c_links.tqe) {
		uh_violation("callout %p (function %p) still pending at the "
		    "end of the run", c, (void *)c->c_func);
		pending++;
	}
	if (ukk_cc_curr != NULL) {
		uh_violation("callout %p still running at the end of the run",
		    ukk_cc_curr);
		pending++;
	}
	uh_sched_unlock();
	return (pending);
}

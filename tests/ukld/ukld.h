/*
 * ukld.h: the userspace kld harness's own seam.
 *
 * The harness loads the shipped target/ko/zbpf.ko into a Linux process, as
 * FreeBSD's kldload would, over an emulation of the kernel interfaces the
 * module imports. It has two halves that cannot share headers:
 *
 *   - host/ (Linux libc): the ELF loader, threads and their %gs base,
 *     the one scheduler lock, time, user-memory copies, the "physical
 *     memory" behind the direct map, violations, and the zsim_* system
 *     call API the test kit calls (tests/sim/zsim.h);
 *   - kpi/ (FreeBSD's kernel headers, -D_KERNEL -DKLD_MODULE, the same
 *     headers and options the module's C shims are built with): every KPI
 *     symbol of kmod/kpi-symbols.txt, with FreeBSD's struct layouts.
 *
 * This header uses only compiler types, so both halves include it. Its
 * functions are the only calls between the halves:
 *   uh_*  host services, implemented in host/, called by kpi/;
 *   ukk_* kernel-side entry points, implemented in kpi/, called by host/
 *         and by the other kpi/ files.
 * Errors are FreeBSD errno values on the kpi side of every call; host/
 * converts them to Linux errno values at the zsim_* API.
 *
 * In the kpi objects every KPI symbol X (kmod/kpi-symbols.txt) is renamed
 * to ukld_kpi_X after compiling (objcopy --redefine-syms), so that the
 * emulated malloc, free, printf, memcpy... never meet libc's. The loader
 * resolves the module's import X to ukld_kpi_X. A KPI function that needs
 * libc (memcpy, memset) is written in host/ directly as ukld_kpi_X.
 */
#ifndef UKLD_H
#define UKLD_H

typedef __SIZE_TYPE__ uk_size_t;
typedef __INT64_TYPE__ uk_i64;
typedef __UINT64_TYPE__ uk_u64;
typedef __UINT32_TYPE__ uk_u32;
typedef __UINT8_TYPE__ uk_u8;
typedef __builtin_va_list uk_va_list;

/* The FreeBSD release the emulation presents (__FreeBSD_version). */
#ifndef UKLD_OSRELDATE
#define UKLD_OSRELDATE 1500068
#endif

/* ---------------------------------------------------------------------- */
/* Host services (host/)                                                  */
/* ---------------------------------------------------------------------- */

/* Boots the emulated machine once: the calling thread's CPU, physical
 * memory, the scheduler and callout thread (ukk_sched_init). Every zsim_*
 * entry point and ukld_kldload call it first; later calls do nothing. */
void uh_boot(void);

/* Console: the kernel's printf goes here (stdout, line-buffered). */
void uh_vprintf(const char *fmt, uk_va_list ap);
void uh_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A broken kernel rule: printed as "ukld: VIOLATION: ..." and counted; the
 * run fails at the end. */
void uh_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int uh_violation_count(void);
/* The emulated kernel panicked: print and abort the process. */
void uh_panic(const char *fmt, uk_va_list ap) __attribute__((noreturn));

/* Harness-private memory (never counted against a malloc type): zeroed,
 * aligned to at least 16, or to `align` when larger. */
void *uh_alloc(uk_size_t size, uk_size_t align);
void uh_free(void *p);
/* Executable memory within +-2 GB of the module: page-granular,
 * read-write-execute. */
void *uh_alloc_exec(uk_size_t size);
void uh_free_exec(void *p, uk_size_t size);
/* Memory in the low 2 GB (for data the module reaches with 32-bit
 * sign-extended relocations). */
void *uh_alloc_low(uk_size_t size);

/* The scheduler: one lock and one condition for every sleep in the
 * emulated kernel (sleep queues, contended locks, epoch waits, select,
 * callouts). Waiters re-check their condition after each wakeup. */
void uh_sched_lock(void);
void uh_sched_unlock(void);
/* Waits (the lock held) until a broadcast or until the monotonic time
 * deadline_ns (0: no deadline). Returns 0, or 1 when the deadline passed. */
int uh_sched_wait(uk_u64 deadline_ns);
void uh_sched_broadcast(void);
/* Gives the processor away (contended spin). */
void uh_yield(void);

/* Threads. Every thread that runs module code has its own emulated CPU:
 * a per-thread block (struct pcpu first, then per-CPU counter memory)
 * with the thread's %gs base pointing at it. uh_cpu_enter() gives the
 * calling thread its CPU the first time (ukk_cpu_setup) and returns its
 * struct thread; a thread's CPU is torn down when it exits. */
#define UKLD_MAXCPU 64
#define UKLD_PCPU_BLOCK_PAGES 17	/* struct pcpu (1 page) + counters */
void *uh_cpu_enter(void);
/* The per-CPU block of CPU `cpu` (NULL if never used); for counter sums. */
void *uh_cpu_block(int cpu);
/* Starts a kernel thread running fn(arg) (it gets its CPU itself). */
int uh_thread_start(void (*fn)(void *), void *arg);

/* Time: monotonic and wall-clock nanoseconds; the monotonic time also as
 * seconds and nanoseconds, as the clock gives it (no division). */
uk_u64 uh_uptime_ns(void);
void uh_uptime_parts(uk_i64 *sec, uk_i64 *nsec);
uk_u64 uh_walltime_ns(void);
void uh_sleep_ns(uk_u64 ns);

/* User memory of the process (the test program is the emulated process):
 * EFAULT (14) for an address that is not mapped readable/writable. */
int uh_copyin(uk_u64 uaddr, void *kaddr, uk_size_t len);
int uh_copyout(const void *kaddr, uk_u64 uaddr, uk_size_t len);

/* Physical memory, seen by the kernel through the direct map at
 * uh_dmap_base (kva_layout.dmap_low): UKLD_PHYS_PAGES frames. Holding a
 * user page makes a free frame translate to it (the frame's direct-map
 * address becomes a second mapping of the user's page), so a write
 * through PHYS_TO_DMAP reaches the user's memory. */
#define UKLD_PHYS_PAGES 8192
extern uk_u64 uh_dmap_base;
/* Reserves the direct map (called by uh_boot). */
void uh_phys_init(void);
/* Maps the page-aligned user page uva onto a free frame: 0 and *pa set, or
 * EFAULT (not mapped, not shared memory) or ENOMEM (no frame). */
int uh_phys_hold(uk_u64 uva, uk_u64 *pa);
/* Releases a frame taken by uh_phys_hold (its direct-map slot unmapped). */
void uh_phys_release(uk_u64 pa);
/* Frames currently held (0 after a clean unload). */
int uh_phys_held(void);
/* Kernel address space (kva_alloc(9)): a reserved, inaccessible range of
 * `size` bytes, or 0; released by uh_kva_release. uh_phys_map makes page
 * `va` a mapping of held frame `pa` (pmap_qenter(9)), uh_phys_unmap
 * makes `size` bytes at `va` inaccessible again (pmap_qremove(9)): 0, or
 * an errno. */
uk_u64 uh_kva_reserve(uk_size_t size);
void uh_kva_release(uk_u64 va, uk_size_t size);
int uh_phys_map(uk_u64 pa, uk_u64 va);
int uh_phys_unmap(uk_u64 va, uk_size_t size);
/* Ranges reserved and not released (0 after a clean unload). */
int uh_kva_reserved(void);

/* Signals to the emulated process (FreeBSD signal numbers). */
void uh_signal_process(int freebsd_sig);
/* The emulated process's id (getpid()). */
int uh_getpid(void);

/* ---------------------------------------------------------------------- */
/* Kernel side (kpi/)                                                     */
/* ---------------------------------------------------------------------- */

/* kpi_sched.c: CPUs and threads, locks, epoch, sleep, callouts. */
/* Lays out struct pcpu at `block` for CPU `cpu`, with a new struct thread
 * (of proc0: the emulated process) as its curthread; returns the thread. */
void *ukk_cpu_setup(void *block, int cpu);
void ukk_cpu_teardown(void *block);
/* The kernel's sleeping rules: records a violation when the calling
 * thread holds a mutex (other than `interlock`, may be NULL) or is inside
 * an epoch section. `what` names the sleeping operation. */
void ukk_may_sleep(const char *what, const void *interlock);
/* Whether the calling thread is inside an epoch section. */
int ukk_in_epoch(void);
/* End-of-run lock checks: no mutex or sx held by anyone, no callout
 * pending; violations recorded. Returns the callouts still pending. */
int ukk_sched_check_idle(void);
/* Starts the callout thread (once). */
void ukk_sched_init(void);

/* kpi_mem.c: malloc(9) types. Bytes and allocations outstanding in the
 * type named `shortdesc` (-1 if no such type is registered). */
long ukk_malloc_type_bytes(const char *shortdesc);
long ukk_malloc_type_count(const char *shortdesc);
/* Prints every type with outstanding memory; returns how many. */
int ukk_malloc_report_leaks(void);

/* kpi_linker.c: module metadata and linker sets, kldload's rules. */
struct ukk_modinfo {
	char name[32];		/* MDT_MODULE name */
	int version;		/* MDT_VERSION of that name */
	int kernel_min, kernel_pref, kernel_max; /* MDT_DEPEND "kernel" */
	int has_kernel_dep;
};
/* Reads set_modmetadata_set (an array of struct mod_metadata pointers,
 * already relocated). EINVAL with a message if it is malformed. */
int ukk_read_modmetadata(void **start, void **stop, struct ukk_modinfo *info,
    char *msg, uk_size_t msglen);
/* Runs the SYSINITs of set_sysinit_set in (subsystem, order) order; the
 * module's MOD_LOAD reaches its handler through module_register_init.
 * Returns the module event's error (0 if none ran). */
int ukk_run_sysinits(void **start, void **stop);
/* kldunload: MOD_QUIESCE then MOD_UNLOAD to every module the file
 * registered; EBUSY (or another error) stops the unload and nothing is
 * undone. On success runs set_sysuninit_set in reverse order. */
int ukk_unload(void **uninit_start, void **uninit_stop);

/* kpi_dev.c: devfs, sysctl, tunables. */
/* Whether /dev/NAME exists. */
int ukk_dev_exists(const char *name);
/* Devices make_dev_s created under /dev/NAME since boot (NULL: under any
 * name). */
int ukk_dev_created(const char *name);
/* sysctl by full name ("net.zbpf.bufsize"), as sysctlbyname(3) from the
 * process: old/new are user addresses (0: none). */
int ukk_sysctl(const char *name, uk_u64 old, uk_size_t *oldlen, uk_u64 newp,
    uk_size_t newlen);
/* A kernel environment (loader tunable) value: kenv NAME=VALUE. */
void ukk_setenv(const char *name, const char *value);
/* Makes the names of a built-in bpf exist (/dev/bpf and net.bpf.maxinsns),
 * as on a GENERIC kernel, before the module loads. */
void ukk_fake_builtin_bpf(void);

/* kpi_sys.c: the system calls on the device, FreeBSD's semantics (file
 * flags FREAD/FWRITE/FNONBLOCK, IOCPARM copyin/copyout, UIO_USERSPACE).
 * Descriptors are small integers of the emulated process. */
int ukk_sys_open(const char *path, int fflags, int *fd);
int ukk_sys_close(int fd);
int ukk_sys_ioctl(int fd, unsigned long cmd, uk_u64 uarg);
int ukk_sys_read(int fd, uk_u64 ubuf, uk_size_t len, uk_size_t *done);
int ukk_sys_write(int fd, uk_u64 ubuf, uk_size_t len, uk_size_t *done);
/* fcntl(F_SETFL): only FNONBLOCK and FASYNC matter (FIONBIO, FIOASYNC). */
int ukk_sys_setfl(int fd, int fflags);
/* poll(2): FreeBSD event bits in and out; timeout_ms < 0 waits forever. */
struct ukk_pollfd {
	int fd;
	short events;
	short revents;
};
int ukk_sys_poll(struct ukk_pollfd *fds, int nfds, int timeout_ms, int *nready);
/* kevent(2) with one EVFILT_READ or EVFILT_WRITE knote per call: attaches
 * it (d_kqfilter) and reports whether it is active, with its data. */
int ukk_sys_kevent_probe(int fd, int filter, int *active, uk_i64 *data);
/* Open descriptors (0 after the kit closed everything). */
int ukk_sys_open_count(void);

/* kpi_net.c: emulated interfaces. */
/* An Ethernet interface named `name` (EEXIST if it exists). */
int ukk_if_create(const char *name);
/* The same with the driver's name (if_dname), an IFT_* type and if_flags
 * added to the usual ones (IFF_NEEDSEPOCH, for one). */
int ukk_if_create_ex(const char *name, const char *dname, int type, int flags);
/* Joins two interfaces back to back, as epair(4). */
int ukk_if_pair(const char *a, const char *b);
/* The interface departs (ifnet_departure_event, then if_detach). */
int ukk_if_destroy(const char *name);
/* A frame arrives (inbound) on, or is sent by the stack through, the
 * interface, as an mbuf chain of a shape chosen from `shape` (0: one
 * mbuf). ENXIO if no such interface. */
int ukk_if_inject(const char *name, const void *frame, uk_size_t len, int inbound,
    unsigned shape);
/* Benchmark: n copies of the frame arrive on the interface, handed to its
 * current (possibly wrapped) if_input in m_nextpkt lists of `list`
 * one-mbuf packets (1: one by one; iflib hands up to its rx budget, 16 by
 * default, per call), all in one network epoch section. The list is built
 * once and handed up again and again (the stack above the driver leaves
 * it alone during the burst), then freed; *ns is the hand-over's time
 * alone (the if_input calls, uh_uptime_ns), not the emulation's mbuf
 * allocator's. ENXIO if no such interface, ENOBUFS if an mbuf could not
 * be had, EINVAL if list < 1. Called on the caller's emulated CPU
 * (uh_cpu_enter). */
int ukk_if_input_burst(const char *name, const void *frame, uk_size_t len,
    long n, int list, uk_u64 *ns);
/* Frames the interface has transmitted (if_transmit reached the driver). */
int ukk_if_sent(const char *name);
/* End of run: every interface's if_input/if_transmit are the driver's own
 * again and no interface is promiscuous; violations recorded otherwise.
 * Returns the number of interfaces that fail. */
int ukk_if_check_restored(void);
/* mbufs currently allocated (0 when every frame was freed). */
long ukk_mbufs_outstanding(void);

/* How a driver hands up a frame (ukk_if_inject_ex, ukk_if_input_list). */
#define UKK_TS_NONE	0
#define UKK_TS_WALL	1	/* M_TSTMP: rcv_tstmp = ts_ns (wall clock) */
#define UKK_TS_UPTIME	2	/* an MTAG_BPF_TIMESTAMP tag: {bt_sec, bt_frac} */
struct ukk_frame_opts {
	/* M_VLANTAG: the frame's bytes carry an 802.1Q header after the
	 * MACs, which the "hardware" strips into m_pkthdr.ether_vtag. */
	int vlan;
	int tstamp;			/* UKK_TS_* */
	uk_u64 ts_ns;
	uk_i64 bt_sec;
	uk_u64 bt_frac;
	/* The chain: lengths of the leading mbufs (0: an empty one), the
	 * rest in one last mbuf, each with `lead` bytes of leading space;
	 * cuts NULL: ukk_if_inject's chain of shape `shape`. */
	const int *cuts;
	int ncuts;
	int lead;
	unsigned shape;
};
int ukk_if_inject_ex(const char *name, const void *frame, uk_size_t len,
    int inbound, const struct ukk_frame_opts *opts);
/* A driver's batch: n packets linked by m_nextpkt, one if_input call. */
int ukk_if_input_list(const char *name, const void *const *frames,
    const uk_size_t *lens, int n, const struct ukk_frame_opts *opts);
/* The last frame the driver transmitted: its bytes (up to cap), M_BCAST
 * and M_MCAST as UKK_SENT_*, the 802.1Q priority a vlan_set_pcp tag asked
 * for (-1: none). Returns the frame's length, -1 if nothing was sent. */
#define UKK_SENT_BCAST	1
#define UKK_SENT_MCAST	2
long ukk_if_last_sent(const char *name, void *buf, uk_size_t cap, int *flags,
    int *pcp);
/* Frames the stack above the driver received (its if_input ran). */
int ukk_if_received(const char *name);
/* Whether if_input and if_transmit are no longer the driver's own. */
int ukk_if_wrapped(const char *name);
/* Another module (netmap's generic mode, say) stacks on the interface:
 * on=1 saves its current if_input/if_transmit and installs wrappers that
 * count each frame and call the saved ones (EBUSY if already on); on=0
 * puts the saved ones back, whoever is on top (EINVAL if not on). */
int ukk_if_stack(const char *name, int on);
/* Frames the stacked wrappers passed on (-1: no such interface). */
int ukk_if_stacked_frames(const char *name);
/* Whose if_input/if_transmit the interface has now: the attached one of
 * that name, else the last departed one (-1: none ever). */
#define UKK_TOP_DRIVER	0	/* the driver's own */
#define UKK_TOP_FOREIGN	1	/* ukk_if_stack's wrappers */
#define UKK_TOP_MODULE	2	/* neither: the module's */
#define UKK_TOP_MIXED	3	/* if_input and if_transmit differ */
int ukk_if_top(const char *name);
/* The promiscuous reference count, if_pcount (-1: no such interface). */
int ukk_if_pcount(const char *name);
/* The interface's Ethernet address (ENXIO if no such interface). */
int ukk_if_lladdr(const char *name, uk_u8 *mac);
/* if_rename: IFF_RENAMING, ifnet_departure_event, the new name,
 * ifnet_arrival_event, IFF_RENAMING cleared. */
int ukk_if_rename(const char *name, const char *newname);

#endif /* UKLD_H */

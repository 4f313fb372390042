/*
 * host.c: the emulated machine's host services (ukld.h, uh_*): boot, the
 * console and violations, harness memory, the one scheduler lock, CPUs
 * (one per thread that runs module code, with %gs at its struct pcpu),
 * kernel threads, time, and signals to the emulated process.
 */
#include <asm/prctl.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ukld.h"

#define	HOST_PAGE	4096UL
#define	HOST_ROUND_PAGE(x) (((x) + HOST_PAGE - 1) & ~(HOST_PAGE - 1))

/* ---------------------------------------------------------------------- */
/* Boot                                                                   */

static pthread_once_t host_boot_once = PTHREAD_ONCE_INIT;

static void
host_boot(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	uh_cpu_enter();
	uh_phys_init();
	ukk_sched_init();
}

void
uh_boot(void)
{
	pthread_once(&host_boot_once, host_boot);
}

/* ---------------------------------------------------------------------- */
/* Console, violations, panic                                             */

static atomic_int host_violations;

void
uh_vprintf(const char *fmt, uk_va_list ap)
{
	vprintf(fmt, ap);
}

void
uh_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

void
uh_violation(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	if (n > 0 && msg[n - 1] == '\n')
		msg[n - 1] = '\0';
	atomic_fetch_add(&host_violations, 1);
	printf("ukld: VIOLATION: %s\n", msg);
}

int
uh_violation_count(void)
{
	return (atomic_load(&host_violations));
}

void
uh_panic(const char *fmt, uk_va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	if (n > 0 && msg[n - 1] == '\n')
		msg[n - 1] = '\0';
	printf("ukld: panic: %s\n", msg);
	fflush(stdout);
	abort();
}

/* ---------------------------------------------------------------------- */
/* Memory                                                                 */

void *
uh_alloc(uk_size_t size, uk_size_t align)
{
	void *p;

	if (align < 16)
		align = 16;
	if (posix_memalign(&p, align, size == 0 ? 1 : size) != 0)
		return (NULL);
	memset(p, 0, size);
	return (p);
}

void
uh_free(void *p)
{
	free(p);
}

/* MAP_32BIT: the first 2 GB, within reach of the module's 32-bit
 * relocations and PC-relative calls. */
static void *
host_map_low(uk_size_t size, int prot)
{
	void *p;

	p = mmap(NULL, HOST_ROUND_PAGE(size), prot,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	return (p == MAP_FAILED ? NULL : p);
}

void *
uh_alloc_exec(uk_size_t size)
{
	return (host_map_low(size, PROT_READ | PROT_WRITE | PROT_EXEC));
}

void
uh_free_exec(void *p, uk_size_t size)
{
	munmap(p, HOST_ROUND_PAGE(size));
}

void *
uh_alloc_low(uk_size_t size)
{
	return (host_map_low(size, PROT_READ | PROT_WRITE));
}

/* ---------------------------------------------------------------------- */
/* The scheduler lock                                                     */

static pthread_mutex_t host_sched_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t host_sched_cv;

__attribute__((constructor)) static void
host_sched_setup(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&host_sched_cv, &attr);
	pthread_condattr_destroy(&attr);
}

void
uh_sched_lock(void)
{
	pthread_mutex_lock(&host_sched_mtx);
}

void
uh_sched_unlock(void)
{
	pthread_mutex_unlock(&host_sched_mtx);
}

int
uh_sched_wait(uk_u64 deadline_ns)
{
	struct timespec ts;

	if (deadline_ns == 0) {
		pthread_cond_wait(&host_sched_cv, &host_sched_mtx);
		return (0);
	}
	ts.tv_sec = (time_t)(deadline_ns / 1000000000);
	ts.tv_nsec = (long)(deadline_ns % 1000000000);
	if (pthread_cond_timedwait(&host_sched_cv, &host_sched_mtx, &ts) ==
	    ETIMEDOUT || uh_uptime_ns() >= deadline_ns)
		return (1);
	return (0);
}

void
uh_sched_broadcast(void)
{
	pthread_cond_broadcast(&host_sched_cv);
}

void
uh_yield(void)
{
	sched_yield();
}

/* ---------------------------------------------------------------------- */
/* CPUs and threads                                                       */

/*
 * A CPU slot's block is made once and kept: a later thread reuses the slot
 * without zeroing it, so the counter(9) values the block holds still count
 * in counter_u64_fetch() after the thread that added them exited.
 */
static pthread_mutex_t host_cpu_mtx = PTHREAD_MUTEX_INITIALIZER;
static void *host_cpu_blocks[UKLD_MAXCPU];
static int host_cpu_used[UKLD_MAXCPU];
static pthread_key_t host_cpu_key;
static pthread_once_t host_cpu_key_once = PTHREAD_ONCE_INIT;
static __thread void *host_curthread;

static void
host_cpu_exit(void *arg)
{
	int cpu = (int)(long)arg - 1;

	ukk_cpu_teardown(host_cpu_blocks[cpu]);
	syscall(SYS_arch_prctl, ARCH_SET_GS, 0UL);
	host_curthread = NULL;
	pthread_mutex_lock(&host_cpu_mtx);
	host_cpu_used[cpu] = 0;
	pthread_mutex_unlock(&host_cpu_mtx);
}

static void
host_cpu_key_create(void)
{
	pthread_key_create(&host_cpu_key, host_cpu_exit);
}

void *
uh_cpu_enter(void)
{
	void *block;
	int cpu;

	if (host_curthread != NULL)
		return (host_curthread);
	pthread_once(&host_cpu_key_once, host_cpu_key_create);
	pthread_mutex_lock(&host_cpu_mtx);
	for (cpu = 0; cpu < UKLD_MAXCPU && host_cpu_used[cpu]; cpu++)
		;
	if (cpu == UKLD_MAXCPU) {
		pthread_mutex_unlock(&host_cpu_mtx);
		printf("ukld: panic: more than %d threads run kernel code\n",
		    UKLD_MAXCPU);
		fflush(stdout);
		abort();
	}
	block = host_cpu_blocks[cpu];
	if (block == NULL) {
		block = mmap(NULL, UKLD_PCPU_BLOCK_PAGES * HOST_PAGE,
		    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (block == MAP_FAILED) {
			pthread_mutex_unlock(&host_cpu_mtx);
			printf("ukld: panic: no memory for a CPU\n");
			fflush(stdout);
			abort();
		}
		__atomic_store_n(&host_cpu_blocks[cpu], block, __ATOMIC_RELEASE);
	}
	host_cpu_used[cpu] = 1;
	pthread_mutex_unlock(&host_cpu_mtx);

	syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)block);
	host_curthread = ukk_cpu_setup(block, cpu);
	pthread_setspecific(host_cpu_key, (void *)(long)(cpu + 1));
	return (host_curthread);
}

void *
uh_cpu_block(int cpu)
{
	if (cpu < 0 || cpu >= UKLD_MAXCPU)
		return (NULL);
	return (__atomic_load_n(&host_cpu_blocks[cpu], __ATOMIC_ACQUIRE));
}

struct host_kthread {
	void (*fn)(void *);
	void *arg;
};

static void *
host_kthread_main(void *arg)
{
	struct host_kthread kt = *(struct host_kthread *)arg;

	free(arg);
	uh_cpu_enter();
	kt.fn(kt.arg);
	return (NULL);
}

int
uh_thread_start(void (*fn)(void *), void *arg)
{
	struct host_kthread *kt;
	pthread_attr_t attr;
	pthread_t t;
	int error;

	kt = malloc(sizeof(*kt));
	if (kt == NULL)
		return (12);	/* ENOMEM */
	kt->fn = fn;
	kt->arg = arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	error = pthread_create(&t, &attr, host_kthread_main, kt);
	pthread_attr_destroy(&attr);
	if (error != 0) {
		free(kt);
		return (12);
	}
	return (0);
}

/* ---------------------------------------------------------------------- */
/* Time                                                                   */

static uk_u64
host_clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ((uk_u64)ts.tv_sec * 1000000000 + (uk_u64)ts.tv_nsec);
}

uk_u64
uh_uptime_ns(void)
{
	return (host_clock_ns(CLOCK_MONOTONIC));
}

void
uh_uptime_parts(uk_i64 *sec, uk_i64 *nsec)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	*sec = ts.tv_sec;
	*nsec = ts.tv_nsec;
}

uk_u64
uh_walltime_ns(void)
{
	return (host_clock_ns(CLOCK_REALTIME));
}

void
uh_sleep_ns(uk_u64 ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---------------------------------------------------------------------- */
/* The emulated process                                                   */

/* FreeBSD signal numbers that differ from Linux's, or that Linux lacks. */
static int
host_linux_signal(int sig)
{
	switch (sig) {
	case 1: return (SIGHUP);
	case 2: return (SIGINT);
	case 3: return (SIGQUIT);
	case 9: return (SIGKILL);
	case 13: return (SIGPIPE);
	case 14: return (SIGALRM);
	case 15: return (SIGTERM);
	case 16: return (SIGURG);
	case 17: return (SIGSTOP);
	case 18: return (SIGTSTP);
	case 19: return (SIGCONT);
	case 20: return (SIGCHLD);
	case 23: return (SIGIO);
	case 28: return (SIGWINCH);
	case 30: return (SIGUSR1);
	case 31: return (SIGUSR2);
	default: return (0);
	}
}

void
uh_signal_process(int freebsd_sig)
{
	int sig;

	sig = host_linux_signal(freebsd_sig);
	if (sig == 0) {
		printf("ukld: signal %d is not emulated; not sent\n",
		    freebsd_sig);
		return;
	}
	kill(getpid(), sig);
}

int
uh_getpid(void)
{
	return ((int)getpid());
}


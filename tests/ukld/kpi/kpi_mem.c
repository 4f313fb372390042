/*
 * kpi_mem.c: malloc(9) with per-type accounting (and M_TEMP), counter(9)
 * over the per-CPU blocks, the console printf and panic, and the stack
 * protector's guard.
 *
 * Memory comes from the host (uh_alloc, uh_alloc_exec for M_EXEC) with a
 * header before each block that records its type, size and origin. As on a
 * kernel with INVARIANTS, memory asked for without M_ZERO is filled with
 * 0xdeadc0de, and so is memory being freed.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/malloc.h>
#include <sys/counter.h>

#include "ukld.h"

#undef malloc	/* sys/malloc.h's M_ZERO-inlining macro */

#define	UKK_MAXTYPES	64
#define	UKK_MHDR_MAGIC	0x75b1a11cU
#define	UKK_MHDR_FREED	0x75b1f4eeU
#define	UKK_TRASH	0xdeadc0deU

struct malloc_type M_TEMP[1] = {
	{ .ks_version = M_VERSION, .ks_shortdesc = "temp" },
};

/*
 * Accounting by type (sched lock). An entry stays after malloc_uninit while
 * the type still has memory outstanding, under its copied name, so the end
 * of the run reports the leak.
 */
struct ukk_mstat {
	struct malloc_type *ms_type;	/* NULL once destroyed */
	char		ms_name[MALLOC_MAX_NAME];
	long		ms_bytes;
	long		ms_count;
};

static struct ukk_mstat ukk_mstats[UKK_MAXTYPES] = {
	{ .ms_type = M_TEMP, .ms_name = "temp" },
};

/* Before every block malloc(9) returns. */
struct ukk_mhdr {
	struct malloc_type *mh_type;
	void		*mh_base;	/* what the host allocated */
	size_t		mh_size;	/* bytes asked for */
	size_t		mh_execlen;	/* uh_alloc_exec length; 0: uh_alloc */
	uint32_t	mh_magic;
};

static struct ukk_mstat *
ukk_mstat_find(const struct malloc_type *type)
{
	int i;

	for (i = 0; i < UKK_MAXTYPES; i++) {
		if (ukk_mstats[i].ms_type == type)
			return (&ukk_mstats[i]);
	}
	return (NULL);
}

static void
ukk_trash(void *p, size_t len)
{
	uint32_t *w = p;
	size_t i;

	for (i = 0; i < len / sizeof(*w); i++)
		w[i] = UKK_TRASH;
}

static void *
ukk_malloc(size_t size, size_t align, struct malloc_type *type, int flags)
{
	struct ukk_mstat *ms;
	struct ukk_mhdr *h;
	size_t off, execlen = 0;
	char *base;
	int how;

	how = flags & (M_WAITOK | M_NOWAIT);
	if (how != M_WAITOK && how != M_NOWAIT)
		uh_violation("malloc(%zu, %s, %#x): bad flags: exactly one of "
		    "M_WAITOK and M_NOWAIT", size, type->ks_shortdesc, flags);
	if (type->ks_version != M_VERSION)
		uh_violation("malloc: bad malloc type version (type %p)", type);
	if ((flags & M_WAITOK) != 0)
		ukk_may_sleep("malloc(M_WAITOK)", NULL);

	if (align < 16)
		align = 16;
	off = roundup2(sizeof(*h), align);
	if ((flags & M_EXEC) != 0) {
		execlen = off + size;
		base = uh_alloc_exec(execlen);
	} else
		base = uh_alloc(off + size, align);
	if (base == NULL) {
		if ((flags & M_WAITOK) != 0)
			panic("malloc(%zu, %s, M_WAITOK): out of memory", size,
			    type->ks_shortdesc);
		return (NULL);
	}
	h = (struct ukk_mhdr *)(base + off) - 1;
	h->mh_type = type;
	h->mh_base = base;
	h->mh_size = size;
	h->mh_execlen = execlen;
	h->mh_magic = UKK_MHDR_MAGIC;
	if ((flags & M_ZERO) == 0)
		ukk_trash(base + off, size);

	uh_sched_lock();
	ms = ukk_mstat_find(type);
	if (ms != NULL) {
		ms->ms_bytes += (long)size;
		ms->ms_count++;
	}
	uh_sched_unlock();
	if (ms == NULL)
		uh_violation("malloc with type \"%s\", which is not registered "
		    "(malloc_init)", type->ks_shortdesc);
	return (base + off);
}

void *
malloc(size_t size, struct malloc_type *type, int flags)
{
	return (ukk_malloc(size, 0, type, flags));
}

void *
malloc_aligned(size_t size, size_t align, struct malloc_type *type, int flags)
{
	if (!powerof2(align) || align > PAGE_SIZE)
		uh_violation("malloc_aligned: alignment %zu is not a power of "
		    "2 up to PAGE_SIZE", align);
	return (ukk_malloc(size, align, type, flags));
}

void *
malloc_exec(size_t size, struct malloc_type *type, int flags)
{
	return (ukk_malloc(size, 0, type, flags | M_EXEC));
}

void
free(void *addr, struct malloc_type *type)
{
	struct ukk_mhdr *h;
	struct ukk_mstat *ms;

	if (addr == NULL)
		return;
	h = (struct ukk_mhdr *)addr - 1;
	if (h->mh_magic != UKK_MHDR_MAGIC) {
		uh_violation("free(%p, %s): %s", addr, type->ks_shortdesc,
		    h->mh_magic == UKK_MHDR_FREED ? "freed twice" :
		    "not memory from malloc(9)");
		return;
	}
	if (h->mh_type != type)
		uh_violation("free(%p, %s) of memory allocated with type %s",
		    addr, type->ks_shortdesc, h->mh_type->ks_shortdesc);
	uh_sched_lock();
	ms = ukk_mstat_find(h->mh_type);
	if (ms != NULL) {
		ms->ms_bytes -= (long)h->mh_size;
		ms->ms_count--;
	}
	uh_sched_unlock();
	if (ms == NULL)
		uh_violation("free(%p, %s) after the type was destroyed "
		    "(malloc_uninit)", addr, type->ks_shortdesc);
	h->mh_magic = UKK_MHDR_FREED;
	ukk_trash(addr, h->mh_size);
	if (h->mh_execlen != 0)
		uh_free_exec(h->mh_base, h->mh_execlen);
	else
		uh_free(h->mh_base);
}

void
malloc_init(void *data)
{
	struct malloc_type *type = data;
	struct ukk_mstat *ms;
	int again;
	size_t i;

	if (type->ks_version != M_VERSION)
		uh_violation("malloc_init: type \"%s\" has version %lu, not %u",
		    type->ks_shortdesc, type->ks_version, M_VERSION);
	uh_sched_lock();
	again = ukk_mstat_find(type) != NULL;
	ms = NULL;
	if (!again) {
		for (i = 0; i < UKK_MAXTYPES; i++) {
			ms = &ukk_mstats[i];
			if (ms->ms_type == NULL && ms->ms_count == 0 &&
			    ms->ms_bytes == 0)
				break;
		}
		if (i == UKK_MAXTYPES) {
			uh_sched_unlock();
			panic("ukld: more than %d malloc types", UKK_MAXTYPES);
		}
		ms->ms_type = type;
		for (i = 0; i < sizeof(ms->ms_name) - 1 &&
		    type->ks_shortdesc[i] != '\0'; i++)
			ms->ms_name[i] = type->ks_shortdesc[i];
		ms->ms_name[i] = '\0';
	}
	uh_sched_unlock();
	if (again)
		uh_violation("malloc_init of type \"%s\", already registered",
		    type->ks_shortdesc);
}

void
malloc_uninit(void *data)
{
	struct malloc_type *type = data;
	struct ukk_mstat *ms;
	long bytes = 0, count = 0;

	uh_sched_lock();
	ms = ukk_mstat_find(type);
	if (ms != NULL) {
		ms->ms_type = NULL;
		bytes = ms->ms_bytes;
		count = ms->ms_count;
	}
	uh_sched_unlock();
	if (ms == NULL)
		uh_violation("malloc_uninit of type \"%s\", which is not "
		    "registered", type->ks_shortdesc);
	else if (count > 0 || bytes > 0)
		uh_printf("Warning: memory type %s leaked memory on destroy "
		    "(%ld allocations, %ld bytes leaked).\n",
		    type->ks_shortdesc, count, bytes);
}

/* The registered type named `shortdesc`, else a destroyed one. */
static struct ukk_mstat *
ukk_mstat_byname(const char *shortdesc)
{
	struct ukk_mstat *found = NULL;
	int i;

	for (i = 0; i < UKK_MAXTYPES; i++) {
		if ((ukk_mstats[i].ms_type != NULL ||
		    ukk_mstats[i].ms_count != 0) &&
		    (strcmp(ukk_mstats[i].ms_name, shortdesc) == 0)) {
			found = &ukk_mstats[i];
			if (found->ms_type != NULL)
				break;
		}
	}
	return (found);
}

long
ukk_malloc_type_bytes(const char *shortdesc)
{
	struct ukk_mstat *ms;
	long n;

	uh_sched_lock();
	ms = ukk_mstat_byname(shortdesc);
	n = ms != NULL ? ms->ms_bytes : -1;
	uh_sched_unlock();
	return (n);
}

long
ukk_malloc_type_count(const char *shortdesc)
{
	struct ukk_mstat *ms;
	long n;

	uh_sched_lock();
	ms = ukk_mstat_byname(shortdesc);
	n = ms != NULL ? ms->ms_count : -1;
	uh_sched_unlock();
	return (n);
}

int
ukk_malloc_report_leaks(void)
{
	struct ukk_mstat *ms;
	int i, n = 0;

	uh_sched_lock();
	for (i = 0; i < UKK_MAXTYPES; i++) {
		ms = &ukk_mstats[i];
		if (ms->ms_count == 0 && ms->ms_bytes == 0)
			continue;
		uh_printf("ukld: malloc type %s%s: %ld allocations, %ld bytes "
		    "outstanding\n", ms->ms_name, ms->ms_type == NULL ?
		    " (destroyed)" : "", ms->ms_count, ms->ms_bytes);
		n++;
	}
	uh_sched_unlock();
	return (n);
}

/* ---------------------------------------------------------------------- */
/* counter(9)                                                             */

/*
 * A counter is an offset into the per-CPU blocks, past the struct pcpu
 * page: the module adds to %gs:(c), the running CPU's block + c.
 */
#define	UKK_NCOUNTERS	\
	((UKLD_PCPU_BLOCK_PAGES - 1) * PAGE_SIZE / sizeof(uint64_t))

static uint64_t ukk_counter_used[UKK_NCOUNTERS / 64];	/* sched lock */

static uint64_t *
ukk_counter_on(int cpu, counter_u64_t c)
{
	char *block = uh_cpu_block(cpu);

	return (block == NULL ? NULL : (uint64_t *)(block + (uintptr_t)c));
}

/* The counter's index, or -1 (a violation) if `c` is not allocated. */
static int
ukk_counter_index(counter_u64_t c, const char *what)
{
	uintptr_t off = (uintptr_t)c;
	size_t i;

	i = (off - PAGE_SIZE) / sizeof(uint64_t);
	if (off < PAGE_SIZE || off % sizeof(uint64_t) != 0 ||
	    i >= UKK_NCOUNTERS ||
	    (ukk_counter_used[i / 64] & (1ULL << (i % 64))) == 0) {
		uh_violation("%s(%p): not an allocated counter", what, c);
		return (-1);
	}
	return ((int)i);
}

counter_u64_t
counter_u64_alloc(int flags)
{
	counter_u64_t c;
	size_t i;
	int cpu;

	if ((flags & M_WAITOK) != 0)
		ukk_may_sleep("counter_u64_alloc(M_WAITOK)", NULL);
	uh_sched_lock();
	for (i = 0; i < UKK_NCOUNTERS; i++) {
		if ((ukk_counter_used[i / 64] & (1ULL << (i % 64))) == 0) {
			ukk_counter_used[i / 64] |= 1ULL << (i % 64);
			break;
		}
	}
	uh_sched_unlock();
	if (i == UKK_NCOUNTERS) {
		if ((flags & M_WAITOK) != 0)
			panic("ukld: out of counter(9) memory");
		return (NULL);
	}
	c = (counter_u64_t)(PAGE_SIZE + i * sizeof(uint64_t));
	/* The blocks outlive their threads: clear what a freed counter left. */
	for (cpu = 0; cpu < UKLD_MAXCPU; cpu++) {
		if (ukk_counter_on(cpu, c) != NULL)
			*ukk_counter_on(cpu, c) = 0;
	}
	return (c);
}

void
counter_u64_free(counter_u64_t c)
{
	int i;

	if (c == NULL)
		return;
	uh_sched_lock();
	i = ukk_counter_index(c, "counter_u64_free");
	if (i >= 0)
		ukk_counter_used[i / 64] &= ~(1ULL << (i % 64));
	uh_sched_unlock();
}

uint64_t
counter_u64_fetch(counter_u64_t c)
{
	uint64_t *p, sum = 0;
	int cpu;

	uh_sched_lock();
	cpu = ukk_counter_index(c, "counter_u64_fetch");
	uh_sched_unlock();
	if (cpu < 0)
		return (0);
	for (cpu = 0; cpu < UKLD_MAXCPU; cpu++) {
		p = ukk_counter_on(cpu, c);
		if (p != NULL)
			sum += __atomic_load_n(p, __ATOMIC_RELAXED);
	}
	return (sum);
}

void
counter_u64_zero(counter_u64_t c)
{
	uint64_t *p;
	int cpu;

	uh_sched_lock();
	cpu = ukk_counter_index(c, "counter_u64_zero");
	uh_sched_unlock();
	if (cpu < 0)
		return;
	for (cpu = 0; cpu < UKLD_MAXCPU; cpu++) {
		p = ukk_counter_on(cpu, c);
		if (p != NULL)
			__atomic_store_n(p, 0, __ATOMIC_RELAXED);
	}
}

/* ---------------------------------------------------------------------- */
/* Console, panic, stack protector                                        */

int
printf(const char *fmt, ...)
{
	__builtin_va_list ap;

	__builtin_va_start(ap, fmt);
	uh_vprintf(fmt, ap);
	__builtin_va_end(ap);
	return (0);
}

void
panic(const char *fmt, ...)
{
	__builtin_va_list ap;

	__builtin_va_start(ap, fmt);
	uh_panic(fmt, ap);
}

/* As sys/kern/stack_protector.c: the canary is the first word. */
long __stack_chk_guard[8] = { 0x2f6b1c3de5a49078L };

void __stack_chk_fail(void) __dead2;

void
__stack_chk_fail(void)
{
	panic("stack overflow detected; backtrace may be corrupted");
}

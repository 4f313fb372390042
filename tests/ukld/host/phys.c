/*
 * phys.c: the emulated process's user memory as the kernel reaches it, and
 * the "physical memory" behind the kernel's direct map.
 *
 * The test program is the emulated process, so a user address is an
 * address of this process. copyin(9) and copyout(9) go through
 * process_vm_readv/writev on our own pid: a bad address gives EFAULT, as on
 * FreeBSD, never a crash.
 *
 * Physical memory is a reserved, inaccessible range of UKLD_PHYS_PAGES
 * pages: the direct map (uh_dmap_base is kva_layout.dmap_low). Holding a
 * user page takes a free frame and makes the frame's direct-map slot a
 * second mapping of the user's page (mremap with an old size of 0), so the
 * kernel's writes through PHYS_TO_DMAP reach the user's memory, page by
 * page, as on FreeBSD. Linux can do that for shared memory only: the kit's
 * zero-copy buffers are MAP_SHARED|MAP_ANON. A private page is refused with
 * EFAULT and a note.
 *
 * Kernel address space (kva_alloc(9)) is a reserved, inaccessible range;
 * entering a held frame there (pmap_qenter(9)) makes a third mapping of
 * the user's page, from its direct-map slot, the same way.
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ukld.h"

#define PHYS_PAGE	4096UL
/* Where the direct map goes: far from the low 2 GB the module lives in. */
#define PHYS_HINT	0x500000000000UL

uk_u64 uh_dmap_base;

static pthread_mutex_t phys_mtx = PTHREAD_MUTEX_INITIALIZER;
static unsigned char phys_used[UKLD_PHYS_PAGES];
static int phys_nheld;

int
uh_copyin(uk_u64 uaddr, void *kaddr, uk_size_t len)
{
	struct iovec local = { kaddr, len };
	struct iovec remote = { (void *)(uintptr_t)uaddr, len };

	if (len == 0)
		return (0);
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)len)
		return (14);	/* EFAULT, FreeBSD's number too */
	return (0);
}

int
uh_copyout(const void *kaddr, uk_u64 uaddr, uk_size_t len)
{
	struct iovec local = { (void *)(uintptr_t)kaddr, len };
	struct iovec remote = { (void *)(uintptr_t)uaddr, len };

	if (len == 0)
		return (0);
	if (process_vm_writev(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)len)
		return (14);
	return (0);
}

void
uh_phys_init(void)
{
	size_t len = UKLD_PHYS_PAGES * PHYS_PAGE;
	void *p;

	if (uh_dmap_base != 0)
		return;
	p = mmap((void *)PHYS_HINT, len, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
	    -1, 0);
	if (p == MAP_FAILED)
		p = mmap(NULL, len, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "ukld: cannot reserve the direct map: %s\n",
		    strerror(errno));
		_exit(1);
	}
	uh_dmap_base = (uk_u64)(uintptr_t)p;
	/* Frame 0 stays unused: physical address 0 looks like "none". */
	phys_used[0] = 1;
}

/*
 * Whether the mapping that holds uva is shared and writable, from
 * /proc/self/maps (mremap would duplicate a read-only page just as well).
 * Returns 0, or EFAULT with `why` set.
 */
static int
phys_check_page(uk_u64 uva, const char **why)
{
	char *line = NULL, perms[8];
	unsigned long start, end;
	size_t cap = 0;
	FILE *f;
	int error = 14;

	*why = "not mapped";
	f = fopen("/proc/self/maps", "re");
	if (f == NULL)
		return (error);
	while (getline(&line, &cap, f) != -1) {
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
			continue;
		if (uva < start || uva >= end)
			continue;
		if (perms[0] != 'r' || perms[1] != 'w')
			*why = "not readable and writable";
		else if (perms[3] != 's')
			*why = "private memory (the harness can hold only "
			    "MAP_SHARED pages)";
		else
			error = 0;
		break;
	}
	free(line);
	fclose(f);
	return (error);
}

int
uh_phys_hold(uk_u64 uva, uk_u64 *pa)
{
	const char *why;
	void *slot, *p;
	int frame;

	if ((uva & (PHYS_PAGE - 1)) != 0 || uh_dmap_base == 0)
		return (14);
	if (phys_check_page(uva, &why) != 0) {
		uh_printf("ukld: note: cannot hold user page %#llx: %s\n",
		    (unsigned long long)uva, why);
		return (14);
	}
	pthread_mutex_lock(&phys_mtx);
	for (frame = 1; frame < UKLD_PHYS_PAGES && phys_used[frame]; frame++)
		;
	if (frame == UKLD_PHYS_PAGES) {
		pthread_mutex_unlock(&phys_mtx);
		return (12);	/* ENOMEM */
	}
	phys_used[frame] = 1;
	phys_nheld++;
	pthread_mutex_unlock(&phys_mtx);

	slot = (void *)(uintptr_t)(uh_dmap_base + (uk_u64)frame * PHYS_PAGE);
	p = mremap((void *)(uintptr_t)uva, 0, PHYS_PAGE,
	    MREMAP_MAYMOVE | MREMAP_FIXED, slot);
	if (p == MAP_FAILED) {
		uh_printf("ukld: note: cannot hold user page %#llx: mremap: "
		    "%s\n", (unsigned long long)uva, strerror(errno));
		uh_phys_release((uk_u64)frame * PHYS_PAGE);
		return (14);
	}
	*pa = (uk_u64)frame * PHYS_PAGE;
	return (0);
}

void
uh_phys_release(uk_u64 pa)
{
	uk_u64 frame = pa / PHYS_PAGE;
	void *slot;

	if (pa % PHYS_PAGE != 0 || frame == 0 || frame >= UKLD_PHYS_PAGES ||
	    !phys_used[frame]) {
		uh_violation("release of physical address %#llx, not held",
		    (unsigned long long)pa);
		return;
	}
	slot = (void *)(uintptr_t)(uh_dmap_base + pa);
	if (mmap(slot, PHYS_PAGE, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
	    MAP_FAILED)
		uh_violation("cannot unmap direct-map slot %p: %s", slot,
		    strerror(errno));
	pthread_mutex_lock(&phys_mtx);
	phys_used[frame] = 0;
	phys_nheld--;
	pthread_mutex_unlock(&phys_mtx);
}

int
uh_phys_held(void)
{
	int n;

	pthread_mutex_lock(&phys_mtx);
	n = phys_nheld;
	pthread_mutex_unlock(&phys_mtx);
	return (n);
}

static int phys_nkva;

uk_u64
uh_kva_reserve(uk_size_t size)
{
	void *p;

	if (size == 0 || size % PHYS_PAGE != 0)
		return (0);
	p = mmap(NULL, size, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return (0);
	pthread_mutex_lock(&phys_mtx);
	phys_nkva++;
	pthread_mutex_unlock(&phys_mtx);
	return ((uk_u64)(uintptr_t)p);
}

void
uh_kva_release(uk_u64 va, uk_size_t size)
{
	if (munmap((void *)(uintptr_t)va, size) != 0)
		uh_violation("kva_free(%#llx, %zu): %s", (unsigned long long)va,
		    (size_t)size, strerror(errno));
	pthread_mutex_lock(&phys_mtx);
	phys_nkva--;
	pthread_mutex_unlock(&phys_mtx);
}

int
uh_phys_map(uk_u64 pa, uk_u64 va)
{
	uk_u64 frame = pa / PHYS_PAGE;
	void *slot, *p;

	if (pa % PHYS_PAGE != 0 || frame == 0 || frame >= UKLD_PHYS_PAGES ||
	    !phys_used[frame] || va % PHYS_PAGE != 0)
		return (22);	/* EINVAL */
	slot = (void *)(uintptr_t)(uh_dmap_base + pa);
	p = mremap(slot, 0, PHYS_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
	    (void *)(uintptr_t)va);
	return (p == MAP_FAILED ? errno : 0);
}

int
uh_phys_unmap(uk_u64 va, uk_size_t size)
{
	if (mmap((void *)(uintptr_t)va, size, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) ==
	    MAP_FAILED)
		return (errno);
	return (0);
}

int
uh_kva_reserved(void)
{
	int n;

	pthread_mutex_lock(&phys_mtx);
	n = phys_nkva;
	pthread_mutex_unlock(&phys_mtx);
	return (n);
}

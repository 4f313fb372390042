/*
 * kpi_vm.c: user memory as the kernel sees it: copyin(9), copyout(9),
 * uiomove(9), the direct map's layout (kva_layout, which 15.0's
 * PHYS_TO_DMAP adds), one struct vm_page per emulated physical frame, and
 * page holding (vm_fault_quick_hold_pages, vm_page_unhold_pages,
 * vm_map_inherit) over the host's frames (uh_phys_hold), and held pages
 * mapped one after the other in kernel address space (kva_alloc,
 * pmap_qenter, pmap_qremove, kva_free).
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/proc.h>
#include <sys/uio.h>

#include <vm/vm.h>
#include <vm/pmap.h>
#include <vm/vm_extern.h>
#include <vm/vm_map.h>
#include <vm/vm_page.h>
#include <vm/vm_param.h>
#include <machine/vmparam.h>

#include "ukld.h"

void ukk_vm_init(void);
int ukk_vm_inherit_log(int i, uk_u64 *start, uk_u64 *end, int *inherit);

struct kva_layout_s kva_layout;

/* One struct vm_page per frame; ref_count counts the holds. */
static struct vm_page vm_pages[UKLD_PHYS_PAGES];
/* The user page each held frame maps (a page held twice is one frame). */
static vm_offset_t vm_page_uva[UKLD_PHYS_PAGES];

/* vm_map_inherit calls, for the tests to look at. */
#define VM_INHERIT_LOG	64
static struct {
	vm_offset_t start, end;
	vm_inherit_t inherit;
} vm_inherit_log[VM_INHERIT_LOG];
static int vm_inherit_count;

/*
 * The direct map's place, known once the host reserved it (uh_boot); called
 * before the module can hold a page or open the device.
 */
void
ukk_vm_init(void)
{
	int i;

	if (kva_layout.dmap_low != 0)
		return;
	for (i = 0; i < UKLD_PHYS_PAGES; i++)
		vm_pages[i].phys_addr = (vm_paddr_t)i * PAGE_SIZE;
	kva_layout.dmap_high = uh_dmap_base +
	    (vm_offset_t)UKLD_PHYS_PAGES * PAGE_SIZE;
	atomic_store_rel_long(&kva_layout.dmap_low, uh_dmap_base);
}

/* ---------------------------------------------------------------------- */
/* User memory                                                            */

int
copyin(const void *udaddr, void *kaddr, size_t len)
{
	ukk_may_sleep("copyin", NULL);
	return (uh_copyin((uk_u64)(uintptr_t)udaddr, kaddr, len));
}

int
copyout(const void *kaddr, void *udaddr, size_t len)
{
	ukk_may_sleep("copyout", NULL);
	return (uh_copyout(kaddr, (uk_u64)(uintptr_t)udaddr, len));
}

int
uiomove(void *cp, int n, struct uio *uio)
{
	struct iovec *iov;
	size_t cnt;
	int error = 0;

	if (uio->uio_rw != UIO_READ && uio->uio_rw != UIO_WRITE)
		uh_violation("uiomove: bad uio_rw %d", uio->uio_rw);
	if (uio->uio_segflg == UIO_USERSPACE) {
		ukk_may_sleep("uiomove", NULL);
		if (uio->uio_td != curthread)
			uh_violation("uiomove: a user uio of another thread");
	}
	while (n > 0 && uio->uio_resid > 0) {
		iov = uio->uio_iov;
		if (uio->uio_iovcnt <= 0) {
			uh_violation("uiomove: uio_resid beyond its iovecs");
			break;
		}
		cnt = iov->iov_len;
		if (cnt == 0) {
			uio->uio_iov++;
			uio->uio_iovcnt--;
			continue;
		}
		if (cnt > (size_t)n)
			cnt = n;
		switch (uio->uio_segflg) {
		case UIO_USERSPACE:
			error = uio->uio_rw == UIO_READ ?
			    uh_copyout(cp, (uk_u64)(uintptr_t)iov->iov_base, cnt) :
			    uh_copyin((uk_u64)(uintptr_t)iov->iov_base, cp, cnt);
			break;
		case UIO_SYSSPACE:
			if (uio->uio_rw == UIO_READ)
				memcpy(iov->iov_base, cp, cnt);
			else
				memcpy(cp, iov->iov_base, cnt);
			break;
		default:
			uh_violation("uiomove: unsupported segment %d",
			    uio->uio_segflg);
			error = EINVAL;
			break;
		}
		if (error != 0)
			break;
		iov->iov_base = (char *)iov->iov_base + cnt;
		iov->iov_len -= cnt;
		uio->uio_resid -= cnt;
		uio->uio_offset += cnt;
		cp = (char *)cp + cnt;
		n -= cnt;
	}
	return (error);
}

/* ---------------------------------------------------------------------- */
/* Held pages                                                             */

static int
vm_map_is_ours(vm_map_t map, const char *what)
{
	if (map == &curthread->td_proc->p_vmspace->vm_map)
		return (1);
	uh_violation("%s: map %p is not the process's", what, map);
	return (0);
}

/* Holds the page at uva (page-aligned): its vm_page, or NULL. */
static vm_page_t
vm_hold_one(vm_offset_t uva)
{
	uk_u64 pa;
	vm_page_t m;
	int i;

	uh_sched_lock();
	for (i = 1; i < UKLD_PHYS_PAGES; i++) {
		m = &vm_pages[i];
		if (m->ref_count != 0 && vm_page_uva[i] == uva) {
			m->ref_count++;
			uh_sched_unlock();
			return (m);
		}
	}
	uh_sched_unlock();
	if (uh_phys_hold(uva, &pa) != 0)
		return (NULL);
	m = &vm_pages[pa / PAGE_SIZE];
	uh_sched_lock();
	m->ref_count = 1;
	vm_page_uva[pa / PAGE_SIZE] = uva;
	uh_sched_unlock();
	return (m);
}

int
vm_fault_quick_hold_pages(vm_map_t map, vm_offset_t addr, vm_size_t len,
    vm_prot_t prot, vm_page_t *ma, int max_count)
{
	vm_offset_t end, va;
	int count, i;

	ukk_may_sleep("vm_fault_quick_hold_pages", NULL);
	ukk_vm_init();
	if (!vm_map_is_ours(map, "vm_fault_quick_hold_pages"))
		return (-1);
	if (len == 0)
		return (0);
	end = round_page(addr + len);
	addr = trunc_page(addr);
	if (end < addr)
		return (-1);
	count = atop(end - addr);
	if (count > max_count)
		panic("vm_fault_quick_hold_pages: count > max_count");
	/* prot: uh_phys_hold takes only readable and writable pages. */
	for (i = 0, va = addr; va < end; i++, va += PAGE_SIZE) {
		ma[i] = vm_hold_one(va);
		if (ma[i] == NULL) {
			vm_page_unhold_pages(ma, i);
			return (-1);
		}
	}
	return (count);
}

void
vm_page_unhold_pages(vm_page_t *ma, int count)
{
	vm_page_t m;
	long frame;
	int i, held, last;

	for (i = 0; i < count; i++) {
		m = ma[i];
		frame = m - vm_pages;
		held = frame > 0 && frame < UKLD_PHYS_PAGES;
		last = 0;
		uh_sched_lock();
		if (held && m->ref_count == 0)
			held = 0;
		if (held && --m->ref_count == 0) {
			vm_page_uva[frame] = 0;
			last = 1;
		}
		uh_sched_unlock();
		if (!held)
			uh_violation("vm_page_unhold_pages: page %p not held", m);
		if (last)
			uh_phys_release(m->phys_addr);
	}
}

/* ---------------------------------------------------------------------- */
/* Kernel address space                                                   */

/* What kva_alloc gave and how many pages pmap_qenter entered there: a
 * range freed with pages still entered, or entered twice, breaks a rule. */
#define VM_KVA_MAX	256
static struct {
	vm_offset_t va;
	vm_size_t size;
	int entered;
} vm_kva[VM_KVA_MAX];

static int
vm_kva_find(vm_offset_t va)
{
	int i;

	for (i = 0; i < VM_KVA_MAX; i++)
		if (vm_kva[i].va != 0 && va >= vm_kva[i].va &&
		    va < vm_kva[i].va + vm_kva[i].size)
			return (i);
	return (-1);
}

vm_offset_t
kva_alloc(vm_size_t size)
{
	vm_offset_t va;
	int i;

	size = round_page(size);
	va = (vm_offset_t)uh_kva_reserve(size);
	if (va == 0)
		return (0);
	uh_sched_lock();
	for (i = 0; i < VM_KVA_MAX && vm_kva[i].va != 0; i++)
		;
	if (i < VM_KVA_MAX) {
		vm_kva[i].va = va;
		vm_kva[i].size = size;
		vm_kva[i].entered = 0;
	}
	uh_sched_unlock();
	if (i == VM_KVA_MAX) {
		uh_kva_release(va, size);
		return (0);
	}
	return (va);
}

void
kva_free(vm_offset_t va, vm_size_t size)
{
	int i, entered = 0;

	size = round_page(size);
	uh_sched_lock();
	i = vm_kva_find(va);
	if (i >= 0 && vm_kva[i].va == va && vm_kva[i].size == size) {
		entered = vm_kva[i].entered;
		vm_kva[i].va = 0;
	} else
		i = -1;
	uh_sched_unlock();
	if (i < 0) {
		uh_violation("kva_free(%#lx, %lu): not a range kva_alloc gave",
		    (unsigned long)va, (unsigned long)size);
		return;
	}
	if (entered != 0)
		uh_violation("kva_free(%#lx): %d pages still entered (pmap_qremove "
		    "first)", (unsigned long)va, entered);
	uh_kva_release(va, size);
}

void
pmap_qenter(vm_offset_t va, vm_page_t *ma, int count)
{
	int i, k, error;

	uh_sched_lock();
	k = vm_kva_find(va);
	if (k >= 0 && va + ptoa(count) <= vm_kva[k].va + vm_kva[k].size)
		vm_kva[k].entered += count;
	else
		k = -1;
	uh_sched_unlock();
	if (k < 0) {
		uh_violation("pmap_qenter(%#lx, %d pages): outside kva_alloc's "
		    "ranges", (unsigned long)va, count);
		return;
	}
	for (i = 0; i < count; i++) {
		if (ma[i]->ref_count == 0)
			uh_violation("pmap_qenter: page %p not held", ma[i]);
		error = uh_phys_map(ma[i]->phys_addr, va + ptoa(i));
		if (error != 0)
			panic("pmap_qenter: cannot map frame %#lx: error %d",
			    (unsigned long)ma[i]->phys_addr, error);
	}
}

void
pmap_qremove(vm_offset_t va, int count)
{
	int k;

	uh_sched_lock();
	k = vm_kva_find(va);
	if (k >= 0 && vm_kva[k].entered >= count)
		vm_kva[k].entered -= count;
	else
		k = -1;
	uh_sched_unlock();
	if (k < 0) {
		uh_violation("pmap_qremove(%#lx, %d pages): not entered",
		    (unsigned long)va, count);
		return;
	}
	if (uh_phys_unmap(va, ptoa(count)) != 0)
		panic("pmap_qremove: cannot unmap %#lx", (unsigned long)va);
}

int
vm_map_inherit(vm_map_t map, vm_offset_t start, vm_offset_t end,
    vm_inherit_t new_inheritance)
{
	ukk_may_sleep("vm_map_inherit", NULL);
	if (!vm_map_is_ours(map, "vm_map_inherit"))
		return (KERN_INVALID_ARGUMENT);
	switch (new_inheritance) {
	case VM_INHERIT_NONE:
	case VM_INHERIT_COPY:
	case VM_INHERIT_SHARE:
	case VM_INHERIT_ZERO:
		break;
	default:
		return (KERN_INVALID_ARGUMENT);
	}
	if (start == end)
		return (KERN_SUCCESS);
	uh_sched_lock();
	if (vm_inherit_count < VM_INHERIT_LOG) {
		vm_inherit_log[vm_inherit_count].start = start;
		vm_inherit_log[vm_inherit_count].end = end;
		vm_inherit_log[vm_inherit_count].inherit = new_inheritance;
	}
	vm_inherit_count++;
	uh_sched_unlock();
	return (KERN_SUCCESS);
}

/*
 * The i-th vm_map_inherit call (of the first VM_INHERIT_LOG): returns how
 * many calls were made; fills the range and inheritance when i is logged.
 */
int
ukk_vm_inherit_log(int i, uk_u64 *start, uk_u64 *end, int *inherit)
{
	int n;

	uh_sched_lock();
	n = vm_inherit_count;
	if (i >= 0 && i < n && i < VM_INHERIT_LOG) {
		*start = vm_inherit_log[i].start;
		*end = vm_inherit_log[i].end;
		*inherit = vm_inherit_log[i].inherit;
	}
	uh_sched_unlock();
	return (n);
}

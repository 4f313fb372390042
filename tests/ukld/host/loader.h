/*
 * loader.h: kldload and kldunload of a FreeBSD amd64 kernel module file
 * (ELF relocatable, as sys/kern/link_elf_obj.c loads it) into this process.
 */
#ifndef UKLD_LOADER_H
#define UKLD_LOADER_H

#include <stddef.h>

#include "ukld.h"

/* The KPI the emulation exports: import name -> address (symtab.c, generated
 * by tests/ukld/build.sh from kmod/kpi-symbols.txt). Ends with a NULL name. */
struct ukld_sym {
	const char *name;
	void *addr;
};
extern const struct ukld_sym ukld_symtab[];

struct ukld_module;

/*
 * Loads the module file at `path`: maps its SHF_ALLOC sections in the low
 * 2 GB, applies every relocation section, resolves undefined symbols against
 * ukld_symtab and __start_set_X / __stop_set_X against the module's own
 * set_X sections, checks its metadata against UKLD_OSRELDATE, then runs its
 * SYSINITs (MOD_LOAD). Returns 0 with *mod set, or an errno with `msg` set
 * to what kldload(8) / the kernel linker would say (for example
 * "symbol foo undefined", "unexpected relocation type 9",
 * "module zbpf requires kernel version ..."); on failure nothing stays mapped.
 */
int ukld_kldload(const char *path, struct ukld_module **mod, char *msg, size_t msglen);
/* MOD_QUIESCE and MOD_UNLOAD, then the SYSUNINITs, then unmaps. EBUSY (or
 * the handler's error) leaves the module loaded. */
int ukld_kldunload(struct ukld_module *mod);
/* What the metadata said. */
const struct ukk_modinfo *ukld_module_info(const struct ukld_module *mod);
/* The module's address range, for messages. */
void ukld_module_range(const struct ukld_module *mod, void **base, size_t *size);

#endif /* UKLD_LOADER_H */

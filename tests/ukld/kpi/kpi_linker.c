/*
 * kpi_linker.c: the kernel linker's side of kldload(2) and kldunload(2),
 * as sys/kern/kern_linker.c and kern_module.c behave: reading a file's
 * module metadata, running its SYSINITs in (subsystem, order) order and
 * its SYSUNINITs in the reverse order, the module events (MOD_LOAD through
 * module_register_init, MOD_QUIESCE then MOD_UNLOAD at unload), and the
 * kernel's own linker sets a module may name, all empty here.
 *
 * The loader (host/loader.c) holds one module file at a time, so the
 * modules registered are that file's.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/queue.h>
#include <sys/module.h>

#include "ukld.h"

struct module {
	TAILQ_ENTRY(module) link;
	const moduledata_t *data;
	modeventhand_t handler;
	void *arg;
};

/* Newest first: unloading goes in the reverse order of loading. */
static TAILQ_HEAD(, module) modules = TAILQ_HEAD_INITIALIZER(modules);

/* MOD_LOAD outcomes of the SYSINITs being run. */
static int sysinit_loads, sysinit_failures, sysinit_error;

/*
 * The kernel's own sets: a module that has no set_X section of its own and
 * names __start_set_X / __stop_set_X gets these (the loader prefers the
 * module's section).
 */
__asm__(
    "	.pushsection .rodata.ukld_kernel_sets, \"a\", @progbits\n"
    "	.balign 8\n"
    "	.globl __start_set_pcpu, __stop_set_pcpu\n"
    "	.globl __start_set_vnet, __stop_set_vnet\n"
    "	.globl __start_set_modmetadata_set, __stop_set_modmetadata_set\n"
    "	.globl __start_set_sysinit_set, __stop_set_sysinit_set\n"
    "	.globl __start_set_sysuninit_set, __stop_set_sysuninit_set\n"
    "__start_set_pcpu:\n"
    "__stop_set_pcpu:\n"
    "__start_set_vnet:\n"
    "__stop_set_vnet:\n"
    "__start_set_modmetadata_set:\n"
    "__stop_set_modmetadata_set:\n"
    "__start_set_sysinit_set:\n"
    "__stop_set_sysinit_set:\n"
    "__start_set_sysuninit_set:\n"
    "__stop_set_sysuninit_set:\n"
    "	.popsection\n");

/* A module declared without a handler (kern_module.c's modevent_nop). */
static int
modevent_nop(module_t mod __unused, int what, void *arg __unused)
{
	switch (what) {
	case MOD_LOAD:
		return (0);
	case MOD_UNLOAD:
		return (EBUSY);
	default:
		return (EOPNOTSUPP);
	}
}

static int
mod_event(struct module *mod, int what)
{
	return (mod->handler(mod, what, mod->arg));
}

/*
 * The SYSINIT of DECLARE_MODULE: registers the module and sends MOD_LOAD.
 * A failed MOD_LOAD is followed by MOD_UNLOAD and the module is dropped,
 * with FreeBSD's console message.
 */
void
module_register_init(const void *arg)
{
	const moduledata_t *data = arg;
	struct module *mod;
	int error;

	TAILQ_FOREACH(mod, &modules, link) {
		if (strcmp(mod->data->name, data->name) == 0) {
			printf("module_register: module %s already exists!\n",
			    data->name);
			sysinit_loads++;
			sysinit_failures++;
			if (sysinit_error == 0)
				sysinit_error = EEXIST;
			return;
		}
	}
	mod = uh_alloc(sizeof(*mod), 0);
	mod->data = data;
	mod->handler = data->evhand != NULL ? data->evhand : modevent_nop;
	mod->arg = data->priv;
	TAILQ_INSERT_HEAD(&modules, mod, link);
	sysinit_loads++;
	error = mod_event(mod, MOD_LOAD);
	if (error != 0) {
		mod_event(mod, MOD_UNLOAD);
		TAILQ_REMOVE(&modules, mod, link);
		uh_free(mod);
		printf("module_register_init: MOD_LOAD (%s, %p, %p) error %d\n",
		    data->name, (void *)data->evhand, data->priv, error);
		sysinit_failures++;
		if (sysinit_error == 0)
			sysinit_error = error;
	}
}

static int
bad_entry(char *msg, uk_size_t msglen, long i)
{
	snprintf(msg, msglen, "module metadata entry %ld is malformed", i);
	return (EINVAL);
}

int
ukk_read_modmetadata(void **start, void **stop, struct ukk_modinfo *info,
    char *msg, uk_size_t msglen)
{
	const struct mod_metadata *md, *other;
	const struct mod_depend *dep;
	const moduledata_t *data;
	void **mdp, **np;

	*info = (struct ukk_modinfo){ .version = 0 };
	for (mdp = start; mdp < stop; mdp++) {
		md = *mdp;
		if (md == NULL || md->md_data == NULL || md->md_cval == NULL)
			return (bad_entry(msg, msglen, mdp - start));
		switch (md->md_type) {
		case MDT_MODULE:
			data = md->md_data;
			if (data->name == NULL)
				return (bad_entry(msg, msglen, mdp - start));
			snprintf(info->name, sizeof(info->name), "%s",
			    data->name);
			break;
		case MDT_DEPEND:
			dep = md->md_data;
			if (strcmp(md->md_cval, "kernel") == 0) {
				info->kernel_min = dep->md_ver_minimum;
				info->kernel_pref = dep->md_ver_preferred;
				info->kernel_max = dep->md_ver_maximum;
				info->has_kernel_dep = 1;
				break;
			}
			/* A dependency on itself (its own MDT_VERSION) is met. */
			for (np = start; np < stop; np++) {
				other = *np;
				if (other != NULL && other->md_cval != NULL &&
				    other->md_type == MDT_VERSION &&
				    strcmp(other->md_cval, md->md_cval) == 0)
					break;
			}
			if (np == stop) {
				/* No other module exists here. */
				snprintf(msg, msglen, "%s", md->md_cval);
				return (ENOENT);
			}
			break;
		}
	}
	for (mdp = start; mdp < stop; mdp++) {
		md = *mdp;
		if (md->md_type == MDT_VERSION &&
		    strcmp(md->md_cval, info->name) == 0)
			info->version =
			    ((const struct mod_version *)md->md_data)->mv_version;
	}
	return (0);
}

/* Sorts by (subsystem, order), stably; descending for SYSUNINITs. */
static struct sysinit **
sysinit_sorted(void **start, void **stop, int descending)
{
	struct sysinit **v, *si;
	long n = stop - start, i, j;
	int64_t key;

	v = uh_alloc((n > 0 ? n : 1) * sizeof(*v), 0);
	for (i = 0; i < n; i++) {
		si = start[i];
		key = ((int64_t)si->subsystem << 32) | si->order;
		for (j = i; j > 0; j--) {
			int64_t k = ((int64_t)v[j - 1]->subsystem << 32) |
			    v[j - 1]->order;
			if (descending ? k >= key : k <= key)
				break;
			v[j] = v[j - 1];
		}
		v[j] = si;
	}
	return (v);
}

int
ukk_run_sysinits(void **start, void **stop)
{
	struct sysinit **v;
	long i;

	sysinit_loads = sysinit_failures = sysinit_error = 0;
	v = sysinit_sorted(start, stop, 0);
	for (i = 0; i < stop - start; i++)
		v[i]->func(v[i]->udata);
	uh_free(v);
	/* linker_load_file fails the file only when every module failed. */
	return (sysinit_loads > 0 && sysinit_failures == sysinit_loads ?
	    sysinit_error : 0);
}

/*
 * linker_file_unload: every module may veto with MOD_QUIESCE (EOPNOTSUPP
 * and EINVAL mean no objection), then each gets MOD_UNLOAD, which may
 * still refuse; the SYSUNINITs run once every module is gone.
 */
int
ukk_unload(void **uninit_start, void **uninit_stop)
{
	struct module *mod;
	struct sysinit **v;
	long i;
	int error;

	TAILQ_FOREACH(mod, &modules, link) {
		error = mod_event(mod, MOD_QUIESCE);
		if (error != 0 && error != EOPNOTSUPP && error != EINVAL)
			return (error);
	}
	while ((mod = TAILQ_FIRST(&modules)) != NULL) {
		error = mod_event(mod, MOD_UNLOAD);
		if (error != 0)
			return (error);
		TAILQ_REMOVE(&modules, mod, link);
		uh_free(mod);
	}
	v = sysinit_sorted(uninit_start, uninit_stop, 1);
	for (i = 0; i < uninit_stop - uninit_start; i++)
		v[i]->func(v[i]->udata);
	uh_free(v);
	return (0);
}

/*
 * bad_mod.c: a minimal kernel module for the loader's self-test
 * (tests/ukld/ukld_selftest.c). Built three ways by make-bad-modules.sh:
 *   plain, linked with bad_reloc.S: a relocation kldload does not know;
 *   -DUKLD_BAD_UNDEF: an import no kernel provides (no_such_kpi);
 *   -D__FreeBSD_version=1600000: DECLARE_MODULE's dependency on the kernel
 *   starts above the release the harness emulates.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>

#ifdef UKLD_BAD_UNDEF
void	no_such_kpi(void);
#endif

static int
ukld_bad_modevent(module_t mod __unused, int type, void *data __unused)
{
	switch (type) {
	case MOD_LOAD:
#ifdef UKLD_BAD_UNDEF
		no_such_kpi();
#endif
		return (0);
	case MOD_UNLOAD:
		return (0);
	default:
		return (EOPNOTSUPP);
	}
}

static moduledata_t ukld_bad_mod = {
	"ukld_bad",
	ukld_bad_modevent,
	NULL
};

DECLARE_MODULE(ukld_bad, ukld_bad_mod, SI_SUB_DRIVERS, SI_ORDER_MIDDLE);
MODULE_VERSION(ukld_bad, 1);

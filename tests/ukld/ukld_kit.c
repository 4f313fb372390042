/*
 * ukld_kit.c: the FreeBSD test kit's checks (tests/freebsd/zk_*.c, the
 * same sources as on FreeBSD) against the real zbpf.ko, loaded by the
 * userspace kld harness. This is not FreeBSD: the module's bytes, its C and
 * its Rust run over an emulation of the kernel built on FreeBSD's headers.
 *
 * Usage: ukld_kit [--ko PATH] [--side-by-side] [CHECK...]
 *   --ko PATH        the module file (default target/ko/zbpf.ko)
 *   --side-by-side   a built-in bpf holds /dev/bpf and net.bpf first, so
 *                    the module must choose /dev/zbpf and net.zbpf
 *
 * After the kit's checks, the harness's own: the taps-* checks of
 * ukld_taps.c (drivers' mbufs, the wire, notes, taps, statistics), the
 * hooks-* and load checks of ukld_hooks.c (zbpf's hooks under another
 * module's wrappers, kept hooks, departures, refused interfaces, the stats
 * write size, the device made once), then kldunload refused with
 * EBUSY while a descriptor is open, then the unload and what it must leave
 * behind (no memory in the module's malloc type, every interface's
 * if_input/if_transmit the driver's own, no lock held, no callout pending,
 * no page held, no mbuf, no kernel rule broken).
 */
#include "zk.h"

#include <stdlib.h>

#include "loader.h"

/* ukld_taps.c: drivers' mbufs, the wire, notes, taps, statistics. */
int ukld_check_taps_chains(void);
int ukld_check_taps_tstamp(void);
int ukld_check_taps_writes(void);
int ukld_check_taps_notes(void);
int ukld_check_taps_install(void);
int ukld_check_taps_stats(void);
int ukld_check_taps_zbuf_pages(void);

/* ukld_hooks.c: zbpf's hooks under other wrappers, the load path. */
int ukld_check_hooks_stacked(void);
int ukld_check_hooks_needsepoch(void);
int ukld_check_hooks_promisc_departure(void);
int ukld_check_hooks_many(void);
int ukld_check_hooks_lagg_bridge(void);
int ukld_check_stats_write_size(void);
int ukld_check_load_dev_once(void);
int ukld_kit_kldunload(void);
extern int ukld_kit_side_by_side;

static struct ukld_module *mod;
static const char *ko_path = "target/ko/zbpf.ko";
int ukld_kit_side_by_side;

/* kldunload for a check that wants it refused; a module that goes anyway
 * is gone for the rest of the run. */
int
ukld_kit_kldunload(void)
{
	int err;

	if (mod == NULL)
		return (ENOENT);
	err = ukld_kldunload(mod);
	if (err == 0)
		mod = NULL;
	return (err);
}

static int capture_buffer(void) { return (zk_check_capture(0)); }
static int capture_zbuf(void) { return (zk_check_capture(1)); }

/* kldunload while a descriptor is open: EBUSY, and the module still works. */
static int
kld_busy(void)
{
	int fd = zk_dev_open(), err;
	struct bpf_version bv;

	if (fd < 0)
		return (-1);
	err = ukld_kldunload(mod);
	if (err != EBUSY) {
		zk_close(fd);
		return (zk_fail("kldunload with a descriptor open: %s, want EBUSY",
		    err == 0 ? "unloaded" : strerror(err)));
	}
	if (zk_ioctl(fd, BIOCVERSION, &bv) != 0) {
		zk_close(fd);
		return (zk_fail("BIOCVERSION after the refused unload: %s", strerror(errno)));
	}
	zk_close(fd);
	zk_note("kldunload refused with EBUSY while a descriptor was open; the device still answers");
	return (0);
}

/* kldunload, then everything the module had must be given back. */
static int
kld_unload(void)
{
	long bytes, count, mbufs;
	int err, open_fds, bad_ifs, callouts, pages, kva, leaks, rc = 0;

	if (mod == NULL)
		return (zk_fail("the module was unloaded by an earlier check"));
	open_fds = ukk_sys_open_count();
	if (open_fds != 0)
		rc = zk_fail("%d descriptors still open before the unload", open_fds);
	err = ukld_kldunload(mod);
	if (err != 0)
		return (zk_fail("kldunload: %s", strerror(err)));
	mod = NULL;
	/* The type is gone with the module; malloc_uninit reports a leak. */
	bytes = ukk_malloc_type_bytes("zbpf");
	count = ukk_malloc_type_count("zbpf");
	leaks = ukk_malloc_report_leaks();
	bad_ifs = ukk_if_check_restored();
	callouts = ukk_sched_check_idle();
	pages = uh_phys_held();
	kva = uh_kva_reserved();
	mbufs = ukk_mbufs_outstanding();
	if (bytes > 0 || leaks != 0)
		rc = zk_fail("memory left: type zbpf %ld bytes in %ld allocations, %d types leak",
		    bytes, count, leaks);
	if (bad_ifs != 0)
		rc = zk_fail("%d interfaces not restored", bad_ifs);
	if (callouts != 0)
		rc = zk_fail("%d callouts still pending", callouts);
	if (pages != 0)
		rc = zk_fail("%d user pages still held", pages);
	if (kva != 0)
		rc = zk_fail("%d kernel address ranges (kva_alloc) not freed", kva);
	if (mbufs != 0)
		rc = zk_fail("%ld mbufs not freed", mbufs);
	if (ukk_dev_exists("zbpf") || ukk_dev_exists("bpf0"))
		rc = zk_fail("a device node outlived the module");
	if (uh_violation_count() != 0)
		rc = zk_fail("%d kernel rules broken during the run (VIOLATION lines above)",
		    uh_violation_count());
	zk_note("unloaded; malloc type zbpf released with nothing outstanding; interfaces "
	    "restored; no lock held, %d callouts pending, %d pages held, %d kernel address "
	    "ranges, %ld mbufs; %d kernel-rule violations", callouts, pages, kva, mbufs,
	    uh_violation_count());
	return (rc);
}

/*
 * The fork checks are left out: the emulated kernel lives in this process,
 * and a forked child would carry a copy of it instead of sharing it.
 */
static const struct zk_check checks[] = {
	{ "device", zk_check_device },
	{ "zerocopy-sysctl", zk_check_zerocopy_sysctl },
	{ "capture-buffer", capture_buffer },
	{ "capture-zbuf", capture_zbuf },
	{ "filter-libpcap", zk_check_filter },
	{ "timing", zk_check_timing },
	{ "write", zk_check_write },
	{ "hostile", zk_check_hostile },
	{ "bad-input", zk_check_bad_input },
	{ "depart", zk_check_depart },
	{ "taps-chains", ukld_check_taps_chains },
	{ "taps-tstamp", ukld_check_taps_tstamp },
	{ "taps-writes", ukld_check_taps_writes },
	{ "taps-notes", ukld_check_taps_notes },
	{ "taps-install", ukld_check_taps_install },
	{ "taps-stats", ukld_check_taps_stats },
	{ "taps-zbuf-pages", ukld_check_taps_zbuf_pages },
	{ "hooks-stacked", ukld_check_hooks_stacked },
	{ "hooks-needsepoch", ukld_check_hooks_needsepoch },
	{ "hooks-promisc-departure", ukld_check_hooks_promisc_departure },
	{ "hooks-many", ukld_check_hooks_many },
	{ "hooks-lagg-bridge", ukld_check_hooks_lagg_bridge },
	{ "stats-write-size", ukld_check_stats_write_size },
	{ "load-dev-once", ukld_check_load_dev_once },
	{ "kld-busy", kld_busy },
	{ "kld-unload", kld_unload },
};

int
main(int argc, char **argv)
{
	const struct ukk_modinfo *mi;
	char msg[256];
	int side = 0, err, status, i, n = 1;
	void *base;
	size_t size;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ko") == 0 && i + 1 < argc)
			ko_path = argv[++i];
		else if (strcmp(argv[i], "--side-by-side") == 0)
			side = 1;
		else
			argv[n++] = argv[i];
	}
	argc = n;

	uh_boot();
	uh_cpu_enter();
	ukld_kit_side_by_side = side;
	if (side)
		ukk_fake_builtin_bpf();
	err = ukld_kldload(ko_path, &mod, msg, sizeof(msg));
	if (err != 0) {
		printf("ukld: kldload %s: %s (%s)\nFAIL kldload\n0 passed, 1 failed\n", ko_path,
		    msg, strerror(err));
		return (1);
	}
	mi = ukld_module_info(mod);
	ukld_module_range(mod, &base, &size);
	printf("ukld: kldload %s: module %s version %d at %p (%zu bytes), needs kernel "
	    "%d..%d, emulated %d\n", ko_path, mi->name, mi->version, base, size,
	    mi->kernel_min, mi->kernel_max, UKLD_OSRELDATE);

	zk_check_name = "setup";
	if (zk_env_init(ukk_dev_exists("zbpf") ? "/dev/zbpf" : "/dev/bpf", "epair0a",
	    "epair0b", "epair9a", "epair9b") != 0) {
		printf("FAIL setup\n0 passed, 1 failed\n");
		return (1);
	}
	printf("ukld: device %s, sysctls %s (%s mode)\n", zk.device, zk.sysctl,
	    side ? "side-by-side" : "replace");
	status = zk_run_checks(checks, sizeof(checks) / sizeof(checks[0]), argc, argv);
	zk_env_fini();
	if (mod != NULL) {
		/* Only some checks were named: unload without the verdict. */
		err = ukld_kldunload(mod);
		if (err != 0)
			printf("ukld: kldunload: %s\n", strerror(err));
	}
	return (status);
}

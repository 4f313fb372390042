/*
 * sim_kit.c: the FreeBSD test kit's checks (tests/freebsd/zk_*.c, the same
 * sources) run against the zbpf simulator, on Linux. Prints one PASS/FAIL
 * line per check and "N passed, N failed".
 *
 * Usage: sim_kit [CHECK...]   (default: all of them)
 */
#include "zk.h"

#include <stdlib.h>

struct check {
	const char *name;
	int (*fn)(void);
};

static int capture_buffer(void) { return (zk_check_capture(0)); }
static int capture_zbuf(void) { return (zk_check_capture(1)); }
static int fork_parent(void) { return (zk_check_fork(0, 1)); }
static int fork_child(void) { return (zk_check_fork(1, 1)); }
static const struct check checks[] = {
	{ "device", zk_check_device },
	{ "zerocopy-sysctl", zk_check_zerocopy_sysctl },
	{ "capture-buffer", capture_buffer },
	{ "capture-zbuf", capture_zbuf },
	{ "filter-libpcap", zk_check_filter },
	{ "timing", zk_check_timing },
	{ "write", zk_check_write },
	{ "fork-parent", fork_parent },
	{ "fork-child", fork_child },
	{ "hostile", zk_check_hostile },
	{ "depart", zk_check_depart },
};

int
main(int argc, char **argv)
{
	size_t i;
	int a, passed = 0, failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	zk_check_name = "setup";
	if (zk_env_init("/dev/bpf", "epair0a", "epair0b", "epair9a", "epair9b") != 0) {
		printf("FAIL setup\n0 passed, 1 failed\n");
		return (1);
	}
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		int wanted = argc < 2;

		for (a = 1; a < argc; a++)
			if (strcmp(argv[a], checks[i].name) == 0)
				wanted = 1;
		if (!wanted)
			continue;
		zk_check_name = checks[i].name;
		long t0 = zk_now_ms();
		int r = checks[i].fn();
		printf("%s %s (%ld ms)\n", r == 0 ? "PASS" : "FAIL", checks[i].name,
		    zk_now_ms() - t0);
		if (r == 0)
			passed++;
		else
			failed++;
	}
	zk_env_fini();
	printf("%d passed, %d failed\n", passed, failed);
	return (failed != 0);
}

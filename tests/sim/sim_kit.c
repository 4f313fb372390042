/*
 * sim_kit.c: the FreeBSD test kit's checks (tests/freebsd/zk_*.c, the same
 * sources) run against the zbpf simulator, on Linux. Prints one PASS/FAIL
 * line per check and "N passed, N failed".
 *
 * Usage: sim_kit [CHECK...]   (default: all of them)
 */
#include "zk.h"

#include <stdlib.h>


static int capture_buffer(void) { return (zk_check_capture(0)); }
static int capture_zbuf(void) { return (zk_check_capture(1)); }
static int fork_parent(void) { return (zk_check_fork(0, 1)); }
static int fork_child(void) { return (zk_check_fork(1, 1)); }
static const struct zk_check checks[] = {
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
	{ "bad-input", zk_check_bad_input },
	{ "depart", zk_check_depart },
};

int
main(int argc, char **argv)
{
	int status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	zk_check_name = "setup";
	if (zk_env_init("/dev/bpf", "epair0a", "epair0b", "epair9a", "epair9b") != 0) {
		printf("FAIL setup\n0 passed, 1 failed\n");
		return (1);
	}
	status = zk_run_checks(checks, sizeof(checks) / sizeof(checks[0]), argc, argv);
	zk_env_fini();
	return (status);
}

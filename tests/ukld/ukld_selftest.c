/*
 * ukld_selftest.c: the loader refuses what FreeBSD's kernel linker
 * refuses, with its console message and errno, and loads the real module.
 *
 * Usage: ukld_selftest [ZBPF_KO [BAD_DIR]]
 *   (defaults target/ko/zbpf.ko and target/ukld/bad, the modules built by
 *   tests/ukld/selftest/make-bad-modules.sh)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "loader.h"
#include "ukld.h"

static int passed, failed;

static void
check(int ok, const char *what, const char *detail)
{
	printf("%s: %s%s%s\n", ok ? "PASS" : "FAIL", what,
	    detail[0] ? ": " : "", detail);
	if (ok)
		passed++;
	else
		failed++;
}

/* A bad module: refused with `error`, the message holding both needles. */
static void
refused(const char *dir, const char *file, int error, const char *needle1,
    const char *needle2, const char *what)
{
	struct ukld_module *mod;
	char path[512], msg[1024], detail[1400];
	int got;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	got = ukld_kldload(path, &mod, msg, sizeof(msg));
	snprintf(detail, sizeof(detail), "errno %d (want %d), \"%s\"", got,
	    error, msg);
	check(got == error && strstr(msg, needle1) != NULL &&
	    strstr(msg, needle2) != NULL, what, detail);
	if (got == 0)
		ukld_kldunload(mod);
}

/* The emulation's kernel memcpy and memset (host/kstring.c), which the
 * module's copies run through: every length up to past the rep movsb
 * threshold, at every alignment of source and destination within 16
 * bytes, against a byte loop; nothing written outside the range. */
void *ukld_kpi_memcpy(void *, const void *, size_t);
void *ukld_kpi_memset(void *, int, size_t);

static void
kstring_checks(void)
{
	static unsigned char src[2200], dst[2300], want[2300];
	size_t len, i, first = 0;
	int so, dof, bad = 0;
	char detail[160];

	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 7 + 3);
	for (len = 0; len <= 2100 && bad == 0; len += len < 80 ? 1 : 13) {
		for (so = 0; so < 16; so++) {
			for (dof = 0; dof < 16; dof++) {
				memset(dst, 0xee, sizeof(dst));
				memset(want, 0xee, sizeof(want));
				for (i = 0; i < len; i++)
					want[64 + dof + i] = src[so + i];
				ukld_kpi_memcpy(dst + 64 + dof, src + so, len);
				if (memcmp(dst, want, sizeof(dst)) != 0 && bad++ == 0)
					first = len;
				for (i = 0; i < len; i++)
					want[64 + dof + i] = (unsigned char)so;
				ukld_kpi_memset(dst + 64 + dof, so, len);
				if (memcmp(dst, want, sizeof(dst)) != 0 && bad++ == 0)
					first = len;
			}
		}
	}
	snprintf(detail, sizeof(detail), "%d wrong, the first of length %zu",
	    bad, first);
	check(bad == 0, "the kernel memcpy and memset stand-ins copy and fill "
	    "exactly", detail);
}

int
main(int argc, char **argv)
{
	const char *ko = argc > 1 ? argv[1] : "target/ko/zbpf.ko";
	const char *bad = argc > 2 ? argv[2] : "target/ukld/bad";
	const struct ukk_modinfo *info;
	struct ukld_module *mod, *again;
	char msg[1024], detail[1200];
	int error, leaks, violations;

	refused(bad, "bad_reloc.ko", ENOEXEC,
	    "kldload: unexpected relocation type 42",
	    "link_elf_obj: symbol hz undefined",
	    "an R_X86_64_REX_GOTPCRELX relocation is refused");
	refused(bad, "bad_undef.ko", ENOEXEC,
	    "link_elf_obj: symbol no_such_kpi undefined",
	    "unsupported file type",
	    "an import the kernel does not provide is refused");
	refused(bad, "bad_kernel.ko", ENOEXEC,
	    "KLD bad_kernel.ko: depends on kernel - not available or "
	    "version mismatch", "unsupported file type",
	    "a module built for __FreeBSD_version 1600000 is refused");

	error = ukld_kldload(ko, &mod, msg, sizeof(msg));
	snprintf(detail, sizeof(detail), "errno %d \"%s\"", error, msg);
	check(error == 0, "zbpf.ko loads (MOD_LOAD succeeds)", detail);
	if (error != 0)
		goto done;
	info = ukld_module_info(mod);
	snprintf(detail, sizeof(detail), "module %s version %d, kernel %d..%d",
	    info->name, info->version, info->kernel_min, info->kernel_max);
	check(strcmp(info->name, "zbpf") == 0 && info->has_kernel_dep &&
	    info->kernel_min <= UKLD_OSRELDATE &&
	    UKLD_OSRELDATE <= info->kernel_max, "zbpf.ko's metadata", detail);
	error = ukld_kldload(ko, &again, msg, sizeof(msg));
	snprintf(detail, sizeof(detail), "errno %d \"%s\"", error, msg);
	check(error == EEXIST, "a second kldload of zbpf.ko is refused",
	    detail);
	error = ukld_kldunload(mod);
	snprintf(detail, sizeof(detail), "errno %d", error);
	check(error == 0, "zbpf.ko unloads (MOD_QUIESCE, MOD_UNLOAD)", detail);
	leaks = ukk_malloc_report_leaks();
	snprintf(detail, sizeof(detail), "%d type(s) with memory left", leaks);
	check(leaks == 0, "no malloc(9) memory left", detail);

	/* /dev/bpf taken, and the loader told to replace it: MOD_LOAD fails. */
	uh_boot();
	uh_cpu_enter();
	ukk_fake_builtin_bpf();
	ukk_setenv("net.zbpf.replace_bpf", "1");
	error = ukld_kldload(ko, &mod, msg, sizeof(msg));
	leaks = ukk_malloc_report_leaks();
	snprintf(detail, sizeof(detail), "errno %d \"%s\", %d type(s) with "
	    "memory left", error, msg, leaks);
	check(error != 0 && mod == NULL && leaks == 0 &&
	    ukk_dev_created("zbpf") == 0,
	    "a failed MOD_LOAD (/dev/bpf taken) leaves nothing behind", detail);
	/* Nothing of it (device, sysctl node, event handler) is in the way. */
	ukk_setenv("net.zbpf.replace_bpf", "0");
	error = ukld_kldload(ko, &mod, msg, sizeof(msg));
	if (error == 0)
		error = ukld_kldunload(mod);
	leaks = ukk_malloc_report_leaks();
	snprintf(detail, sizeof(detail), "errno %d \"%s\", %d type(s) with "
	    "memory left", error, msg, leaks);
	check(error == 0 && leaks == 0 && ukk_dev_exists("zbpf") == 0,
	    "then it loads as /dev/zbpf and unloads cleanly", detail);
done:
	violations = uh_violation_count();
	snprintf(detail, sizeof(detail), "%d", violations);
	check(violations == 0, "no kernel rule broken", detail);
	kstring_checks();
	printf("%d passed, %d failed\n", passed, failed);
	return (failed != 0);
}

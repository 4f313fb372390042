/*
 * The benchmark's handle on FreeBSD's amd64 BPF JIT (bpf_jitter, built from
 * a FreeBSD source tree by tests/bench/build.rs): compile a program, hand
 * out its native function, free it. Only bpf_jitter's public API is used.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/mman.h>
#include <string.h>

#include <net/bpf.h>
#include <net/bpf_jitter.h>

/* Compiles n instructions; NULL if bpf_jitter could not. */
void *
zbpf_bench_jit(const struct bpf_insn *insns, int n)
{
	/* bpf_jitter reads the program only; its prototype is not const. */
	return (bpf_jitter((struct bpf_insn *)(uintptr_t)insns, n));
}

/*
 * The compiled function, called directly as bpf(4) calls it:
 * func(packet, wire length, captured length).
 */
bpf_filter_func
zbpf_bench_jit_func(void *handle)
{
	return (((bpf_jit_filter *)handle)->func);
}

/* The length in bytes of the compiled function's code, which starts at func. */
size_t
zbpf_bench_jit_size(void *handle)
{
	return (((bpf_jit_filter *)handle)->size);
}

void
zbpf_bench_jit_free(void *handle)
{
	bpf_destroy_jit_filter(handle);
}

/*
 * A copy of size bytes of code in a fresh mapping, starting offset bytes
 * into its first page (code placement as a variable of the benchmark):
 * the mapping's base, or NULL. bpf_jitter's code is position-independent
 * (its jumps are relative, it refers to nothing outside itself).
 */
void *
zbpf_bench_code_place(const void *code, size_t size, size_t offset)
{
	void *map;

	map = mmap(NULL, offset + size, PROT_READ | PROT_WRITE, MAP_ANON,
	    -1, 0);
	if (map == MAP_FAILED)
		return (NULL);
	memset(map, 0xcc, offset);
	memcpy((char *)map + offset, code, size);
	if (mprotect(map, offset + size, PROT_READ | PROT_EXEC) != 0) {
		munmap(map, offset + size);
		return (NULL);
	}
	return (map);
}

void
zbpf_bench_code_unplace(void *map, size_t size, size_t offset)
{
	munmap(map, offset + size);
}

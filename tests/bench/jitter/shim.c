/*
 * The benchmark's handle on FreeBSD's amd64 BPF JIT (bpf_jitter, built from
 * a FreeBSD source tree by tests/bench/build.rs): compile a program, hand
 * out its native function, free it. Only bpf_jitter's public API is used.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

void
zbpf_bench_jit_free(void *handle)
{
	bpf_destroy_jit_filter(handle);
}

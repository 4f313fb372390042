# zbpf. Two commands do everything, set-up included:
#
#   make run    Linux: the demo, the engine on simulated interfaces.
#               FreeBSD: build zbpf.ko and load it.
#   make test   Linux: every check CI runs.
#               FreeBSD (as root): the FreeBSD test kit.
#
# Other targets (Linux), each one stage of `make test` or a tool:
#   deps demo bench bench-smoke fmt clippy unit abi-check ko ukld man lint
#   libpcap kit sim fuzz
# `make demo ARGS="--filter 'udp port 53'"` passes arguments; `make bench`
# runs the benchmark suite and writes tests/bench/benchmarks.md.
# This file works with GNU make and with FreeBSD's make; the work is in
# scripts/task.sh.

ARGS ?=

run test deps demo bench bench-smoke fmt clippy unit abi-check ko ukld man lint libpcap kit sim fuzz:
	@sh scripts/task.sh $@ $(ARGS)

.PHONY: run test deps demo bench bench-smoke fmt clippy unit abi-check ko ukld man lint libpcap kit sim fuzz

# zbpf. Two commands do everything, set-up included:
#
#   make run    Linux: the demo, the engine on simulated interfaces.
#               FreeBSD: build zbpf.ko and load it.
#   make test   Linux: every check CI runs.
#               FreeBSD (as root): the FreeBSD test kit.
#
# Other targets (Linux): deps demo fmt clippy unit abi-check ko man lint; `make demo ARGS="--filter 'udp port 53'"` passes arguments.
# This file works with GNU make and with FreeBSD's make; the work is in
# scripts/task.sh.

ARGS ?=

run test deps demo fmt clippy unit abi-check ko man lint:
	@sh scripts/task.sh $@ $(ARGS)

.PHONY: run test deps demo fmt clippy unit abi-check ko man lint

/*
 * opt_global.h for compile-checking zbpf's C shims on Linux: the options a
 * stand-alone module build gets from bsd.kmod.mk on FreeBSD.
 */
#define SMP 1
#define MAC 1
#define VIMAGE 1
#define NEW_PCIB 1

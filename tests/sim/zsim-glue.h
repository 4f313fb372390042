/*
 * zsim-glue.h: what tests see of zsim-glue.c (libpcap's system calls
 * against the zbpf simulator).
 */
#ifndef ZSIM_GLUE_H
#define ZSIM_GLUE_H

#include <sys/types.h>

/* Path of the device libpcap opened last. */
extern const char *zsg_last_open;
/* System calls libpcap made on simulated descriptors so far. */
extern unsigned long zsg_calls;
/* fork(), after which the child's calls on simulated descriptors are made
 * by the parent (where the simulated kernel lives). */
pid_t zsg_fork(void);

#endif /* ZSIM_GLUE_H */

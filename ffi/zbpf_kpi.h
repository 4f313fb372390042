/*
 * zbpf_kpi.h: the interface between zbpf's Rust engine and the thin C side
 * of the FreeBSD kernel module.
 *
 * One declaration serves both languages: kmod/ includes this header, and
 * build.rs runs bindgen over it to produce the Rust bindings. Functions named
 * zbpf_kpi_* are implemented in C (kmod/) and called by Rust; functions named
 * zbpf_rs_* are implemented in Rust and called by C.
 */
#ifndef ZBPF_KPI_H
#define ZBPF_KPI_H

#ifdef _KERNEL
#include <sys/types.h>
#else
#include <stddef.h>
#include <stdint.h>
#endif

/* Bumped whenever a declaration below changes meaning. */
#define ZBPF_KPI_VERSION 1

#endif /* ZBPF_KPI_H */

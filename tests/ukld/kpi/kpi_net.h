/*
 * kpi_net.h: what kpi_mbuf.c and kpi_net.c share (FreeBSD kernel side).
 */
#ifndef UKLD_KPI_NET_H
#define UKLD_KPI_NET_H

struct ifnet;
struct mbuf;

/* The frame as an mbuf chain of a shape chosen by `shape` (0: one mbuf). */
struct mbuf *ukk_mbuf_chain(const void *frame, int len, unsigned shape,
    struct ifnet *rcvif);
/* A chain of explicit mbuf lengths (struct ukk_frame_opts's cuts). */
struct mbuf *ukk_mbuf_cuts(const void *frame, int len, const int *cuts,
    int ncuts, int lead, struct ifnet *rcvif);
/* M_PREPEND's slow path included: NULL (chain freed) on failure. */
struct mbuf *ukk_m_prepend(struct mbuf *m, int len, int how);
void ukk_m_tag_delete_nonpersistent(struct mbuf *m);

/* Benchmark: n frames through the interface's (wrapped) if_input, in
 * m_nextpkt lists of `list` packets; *ns: the hand-over's time. */
int ukk_if_input_burst(const char *name, const void *frame, uk_size_t len,
    long n, int list, uk_u64 *ns);

#endif /* UKLD_KPI_NET_H */

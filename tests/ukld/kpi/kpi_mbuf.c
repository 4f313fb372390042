/*
 * kpi_mbuf.c: mbuf(9) and mbuf_tags(9) as the module uses them: m_get3,
 * m_freem, m_adj, m_tag_alloc, m_tag_locate, with FreeBSD's struct mbuf.
 *
 * mbufs and clusters are harness memory (uh_alloc), as FreeBSD's come
 * from UMA zones and not from malloc(9). Every mbuf and tag outstanding is
 * counted, so the end of a run can tell whether all were freed. Also the
 * injector's helper that cuts a frame into a chain of a chosen shape.
 */
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/malloc.h>
#include <sys/mbuf.h>
#include <machine/atomic.h>

#include "ukld.h"
#include "kpi_net.h"

static volatile u_long ukk_mbufs;	/* mbufs and tags outstanding */

long
ukk_mbufs_outstanding(void)
{
	return ((long)atomic_load_long(&ukk_mbufs));
}

static int
ukk_ext_type(int size)
{
	switch (size) {
	case MCLBYTES:
		return (EXT_CLUSTER);
	case MJUMPAGESIZE:
		return (EXT_JUMBOP);
	case MJUM9BYTES:
		return (EXT_JUMBO9);
	default:
		return (EXT_JUMBO16);
	}
}

/*
 * One mbuf, initialized as m_init does, with a cluster of `clsize` bytes
 * attached as the cluster zones' constructors do (0: inline storage).
 */
static struct mbuf *
ukk_mbuf_alloc(int how, short type, int flags, int clsize)
{
	struct mbuf *m;

	if (how & M_WAITOK)
		ukk_may_sleep("mbuf allocation (M_WAITOK)", NULL);
	m = uh_alloc(MSIZE, 0);
	m->m_type = type;
	m->m_flags = flags;
	m->m_data = (flags & M_PKTHDR) ? m->m_pktdat : m->m_dat;
	/* uh_alloc zeroes: m_next, m_len and the packet header are clear. */
	if (clsize != 0) {
		m->m_ext.ext_buf = uh_alloc(clsize, 0);
		m->m_ext.ext_size = clsize;
		m->m_ext.ext_type = ukk_ext_type(clsize);
		m->m_ext.ext_flags = EXT_FLAG_EMBREF;
		m->m_ext.ext_count = 1;
		m->m_data = m->m_ext.ext_buf;
		m->m_flags |= M_EXT;
	}
	atomic_add_long(&ukk_mbufs, 1);
	return (m);
}

/* 15.0: the smallest storage that holds `size` bytes, up to 16k. */
struct mbuf *
m_get3(int size, int how, short type, int flags)
{
	int clsize;

	if (size <= MHLEN || (size <= MLEN && (flags & M_PKTHDR) == 0))
		clsize = 0;
	else if (size <= MCLBYTES)
		clsize = MCLBYTES;
	else if (size <= MJUMPAGESIZE)
		clsize = MJUMPAGESIZE;
	else if (size <= MJUM9BYTES)
		clsize = MJUM9BYTES;
	else if (size <= MJUM16BYTES)
		clsize = MJUM16BYTES;
	else
		return (NULL);
	return (ukk_mbuf_alloc(how, type, flags, clsize));
}

static void
ukk_tag_free(struct m_tag *t)
{
	uh_free(t);
	atomic_subtract_long(&ukk_mbufs, 1);
}

struct m_tag *
m_tag_alloc(uint32_t cookie, uint16_t type, int len, int wait)
{
	struct m_tag *t;

	if (wait & M_WAITOK)
		ukk_may_sleep("m_tag_alloc(M_WAITOK)", NULL);
	if (len < 0)
		return (NULL);
	t = uh_alloc(sizeof(*t) + len, 0);
	m_tag_setup(t, cookie, type, len);
	t->m_tag_free = ukk_tag_free;
	atomic_add_long(&ukk_mbufs, 1);
	return (t);
}

struct m_tag *
m_tag_locate(struct mbuf *m, uint32_t cookie, uint16_t type,
    struct m_tag *t)
{
	struct m_tag *p;

	p = (t == NULL) ? SLIST_FIRST(&m->m_pkthdr.tags) :
	    SLIST_NEXT(t, m_tag_link);
	for (; p != NULL; p = SLIST_NEXT(p, m_tag_link))
		if (p->m_tag_cookie == cookie && p->m_tag_id == type)
			return (p);
	return (NULL);
}

/* Deletes every tag without MTAG_PERSISTENT, as epair(4) does. */
void
ukk_m_tag_delete_nonpersistent(struct mbuf *m)
{
	struct m_tag *t, *next;

	SLIST_FOREACH_SAFE(t, &m->m_pkthdr.tags, m_tag_link, next) {
		if ((t->m_tag_id & MTAG_PERSISTENT) == 0) {
			m_tag_unlink(m, t);
			m_tag_free(t);
		}
	}
}

/* m_free: the packet header's tags, the storage's last reference, the mbuf. */
static struct mbuf *
ukk_m_free(struct mbuf *m)
{
	struct mbuf *next = m->m_next;
	struct m_tag *t;

	if (m->m_flags & M_PKTHDR) {
		while ((t = SLIST_FIRST(&m->m_pkthdr.tags)) != NULL) {
			m_tag_unlink(m, t);
			m_tag_free(t);
		}
	}
	if (m->m_flags & M_EXT) {
		/* Only whole clusters are made here; each has one reference. */
		if (m->m_ext.ext_free != NULL)
			m->m_ext.ext_free(m);
		else
			uh_free(m->m_ext.ext_buf);
	}
	uh_free(m);
	atomic_subtract_long(&ukk_mbufs, 1);
	return (next);
}

void
m_freem(struct mbuf *m)
{
	while (m != NULL)
		m = ukk_m_free(m);
}

/*
 * Trims len bytes from the head (len >= 0) or -len bytes from the tail;
 * m_pkthdr.len follows. Trailing mbufs left empty by a tail trim are
 * freed; at the head they stay, empty.
 */
void
m_adj(struct mbuf *mp, int req_len)
{
	struct mbuf *m;
	int len, total;

	if (mp == NULL)
		return;
	if (req_len >= 0) {
		len = req_len;
		for (m = mp; m != NULL && len > 0; m = m->m_next) {
			if (m->m_len > len) {
				m->m_len -= len;
				m->m_data += len;
				len = 0;
				break;
			}
			len -= m->m_len;
			m->m_len = 0;
		}
		if (mp->m_flags & M_PKTHDR)
			mp->m_pkthdr.len -= req_len - len;
		return;
	}
	len = -req_len;
	total = 0;
	for (m = mp; ; m = m->m_next) {
		total += m->m_len;
		if (m->m_next == NULL)
			break;
	}
	if (m->m_len >= len) {
		/* The last mbuf alone absorbs the trim. */
		m->m_len -= len;
		if (mp->m_flags & M_PKTHDR)
			mp->m_pkthdr.len -= len;
		return;
	}
	total = MAX(total - len, 0);
	if (mp->m_flags & M_PKTHDR)
		mp->m_pkthdr.len = total;
	for (m = mp; m != NULL; m = m->m_next) {
		if (m->m_len >= total) {
			m->m_len = total;
			m_freem(m->m_next);
			m->m_next = NULL;
			break;
		}
		total -= m->m_len;
	}
}

/*
 * M_PREPEND: room for len bytes before the data, in the first mbuf when it
 * has the leading space, else in a new head that takes the packet header.
 * NULL (the chain freed) when no mbuf could be had.
 */
struct mbuf *
ukk_m_prepend(struct mbuf *m, int len, int how)
{
	struct mbuf *mn;

	if (M_LEADINGSPACE(m) >= len) {
		m->m_data -= len;
		m->m_len += len;
	} else {
		if (len > MHLEN) {
			m_freem(m);
			return (NULL);
		}
		mn = ukk_mbuf_alloc(how, m->m_type, m->m_flags & M_PKTHDR, 0);
		if (m->m_flags & M_PKTHDR) {
			mn->m_flags = (m->m_flags & M_COPYFLAGS);
			mn->m_pkthdr = m->m_pkthdr;
			SLIST_INIT(&m->m_pkthdr.tags);
			m->m_flags &= ~M_PKTHDR;
		}
		mn->m_next = m;
		m = mn;
		if (len < M_SIZE(m))
			M_ALIGN(m, len);
		m->m_len = len;
	}
	if (m->m_flags & M_PKTHDR)
		m->m_pkthdr.len += len;
	return (m);
}

/* xorshift32: the chain shapes are a function of the seed alone. */
static uint32_t
ukk_rand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return (*s = x);
}

/*
 * The frame as a packet: shape 0 is one mbuf of m_get3's choice; any other
 * shape is a chain mixing small inline mbufs, 2k clusters and empty mbufs,
 * the first with the packet header. rcvif may be NULL (outbound).
 */
struct mbuf *
ukk_mbuf_chain(const void *frame, int len, unsigned shape, struct ifnet *rcvif)
{
	const char *p = frame;
	struct mbuf *top, *m, **tail;
	uint32_t seed;
	int n, room, empties;

	if (len < 0)
		return (NULL);
	if (shape == 0) {
		top = m_get3(len, M_NOWAIT, MT_DATA, M_PKTHDR);
		if (top == NULL)
			return (NULL);
		memcpy(mtod(top, void *), p, len);
		top->m_len = len;
	} else {
		seed = shape * 2654435761u;
		if (seed == 0)
			seed = 1;
		top = NULL;
		tail = &top;
		empties = 0;
		n = 0;
		do {
			switch (ukk_rand(&seed) % 4) {
			case 0:
				/* An empty mbuf, at most a few per chain. */
				room = empties++ < 4 ? 0 : -1;
				break;
			case 1:
				room = (top == NULL) ? MHLEN : MLEN;
				break;
			default:
				room = MCLBYTES;
				break;
			}
			if (room < 0)
				continue;
			m = ukk_mbuf_alloc(M_NOWAIT, MT_DATA,
			    top == NULL ? M_PKTHDR : 0,
			    room == MCLBYTES ? MCLBYTES : 0);
			if (room > 0) {
				room = 1 + ukk_rand(&seed) % room;
				m->m_len = MIN(room, len - n);
				memcpy(mtod(m, void *), p + n, m->m_len);
				n += m->m_len;
			}
			*tail = m;
			tail = &m->m_next;
		} while (n < len || top == NULL);
	}
	top->m_pkthdr.len = len;
	top->m_pkthdr.rcvif = rcvif;
	return (top);
}

/*
 * The frame as a chain whose leading mbufs hold cuts[0..ncuts-1] bytes (0:
 * an empty mbuf) and a last one the rest, each with `lead` bytes of
 * leading space; the first has the packet header. NULL if a cut does not
 * fit in a cluster.
 */
struct mbuf *
ukk_mbuf_cuts(const void *frame, int len, const int *cuts, int ncuts, int lead,
    struct ifnet *rcvif)
{
	const char *p = frame;
	struct mbuf *top = NULL, *m, **tail = &top;
	int i, n = 0, want;

	if (len < 0 || lead < 0)
		return (NULL);
	for (i = 0; i <= ncuts; i++) {
		want = (i < ncuts) ? MIN(cuts[i], len - n) : len - n;
		if (want < 0 || lead + want > MCLBYTES) {
			m_freem(top);
			return (NULL);
		}
		m = ukk_mbuf_alloc(M_NOWAIT, MT_DATA, top == NULL ? M_PKTHDR : 0,
		    lead + want > ((top == NULL) ? MHLEN : MLEN) ? MCLBYTES : 0);
		m->m_data += lead;
		m->m_len = want;
		memcpy(mtod(m, void *), p + n, want);
		n += want;
		*tail = m;
		tail = &m->m_next;
	}
	top->m_pkthdr.len = len;
	top->m_pkthdr.rcvif = rcvif;
	return (top);
}

/*
 * kpi_dev.c: devfs (make_dev_s(9), aliases, destroy_dev(9), per-file
 * cdevpriv), the sysctl tree under the static "net" node (dynamic oids,
 * contexts, sysctl_handle_int, kernel_sysctlbyname, and sysctlbyname(3)
 * from the process with user buffers), the kernel environment
 * (getenv_int, loader tunables) and priv_check(9).
 *
 * The emulated process is root outside any jail. All bookkeeping here is
 * harness memory (uh_alloc) under the scheduler lock; no method or handler
 * of the module is ever called with that lock held.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/conf.h>
#include <sys/file.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/priv.h>
#include <sys/proc.h>
#include <sys/sysctl.h>
#include <sys/tree.h>

#include <machine/stdarg.h>

#include "ukld.h"

/* Shared with kpi_sys.c (no header of their own: ukld.h is the seam). */
struct cdev *ukk_dev_lookup(const char *name);
struct cdevsw *ukk_dev_refthread(struct cdev *dev);
void ukk_dev_relthread(struct cdev *dev);
void ukk_dev_rel(struct cdev *dev);
void ukk_dev_fpdrop(struct file *fp);

/* ---------------------------------------------------------------------- */
/* devfs                                                                  */

/* A file's cdevpriv (devfs_vnops.c's record). */
struct cdev_privdata {
	struct file *cdpd_fp;
	void *cdpd_data;
	d_priv_dtor_t *cdpd_dtr;
	LIST_ENTRY(cdev_privdata) cdpd_list;
};

/* A cdev and what devfs keeps beside it (devfs_int.h's cdev_priv). */
struct dev_priv {
	struct cdev cdev;
	LIST_HEAD(, cdev_privdata) fdpriv;
};

#define	cdev2priv(d)	__containerof((d), struct dev_priv, cdev)

/* Named devices, on si_list. */
static LIST_HEAD(, cdev) dev_named = LIST_HEAD_INITIALIZER(dev_named);

/* make_dev_s's creations by name (ukk_dev_created), under the lock. */
#define	DEV_CREATED_NAMES	16
static struct {
	char name[SPECNAMELEN + 1];
	int count;
} dev_created[DEV_CREATED_NAMES];
static int dev_created_total;

static void
dev_created_add_locked(const char *name)
{
	int i, k;

	dev_created_total++;
	for (i = 0; i < DEV_CREATED_NAMES; i++) {
		/* A free slot (never used: all zeros) takes the name. */
		for (k = 0; dev_created[i].count == 0 && k < SPECNAMELEN &&
		    name[k] != '\0'; k++)
			dev_created[i].name[k] = name[k];
		if (strcmp(dev_created[i].name, name) == 0) {
			dev_created[i].count++;
			return;
		}
	}
}

static struct cdev *
dev_find_locked(const char *name)
{
	struct cdev *dev;

	LIST_FOREACH(dev, &dev_named, si_list)
		if (strcmp(dev->si_name, name) == 0)
			return (dev);
	return (NULL);
}

/*
 * Formats and checks a device name as kern_conf.c's prep_devname: no
 * leading, doubled or trailing '/', no "." or ".." component, at most
 * SPECNAMELEN bytes, not taken (EEXIST).
 */
static int
dev_name_format(char *name, const char *fmt, va_list ap)
{
	char buf[SPECNAMELEN + 2], *s, *d, *c;
	int len;

	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (len < 0 || len > SPECNAMELEN)
		return (ENAMETOOLONG);
	for (s = buf; *s == '/'; s++)
		;
	for (d = name; *s != '\0'; s++) {
		if (*s == '/' && (s[1] == '/' || s[1] == '\0'))
			continue;
		*d++ = *s;
	}
	*d = '\0';
	if (*name == '\0')
		return (EINVAL);
	for (c = name; c != NULL; c = s != NULL ? s + 1 : NULL) {
		for (s = c; *s != '\0' && *s != '/'; s++)
			;
		if ((s - c == 1 && c[0] == '.') ||
		    (s - c == 2 && c[0] == '.' && c[1] == '.'))
			return (EINVAL);
		if (*s == '\0')
			s = NULL;
	}
	return (dev_find_locked(name) != NULL ? EEXIST : 0);
}

static struct cdev *
dev_alloc(void)
{
	struct dev_priv *cdp;

	cdp = uh_alloc(sizeof(*cdp), 0);
	LIST_INIT(&cdp->fdpriv);
	LIST_INIT(&cdp->cdev.si_children);
	cdp->cdev.si_refcount = 1;	/* devfs's own */
	return (&cdp->cdev);
}

static void
dev_rel_locked(struct cdev *dev)
{
	if (--dev->si_refcount == 0)
		uh_free(cdev2priv(dev));
}

void
make_dev_args_init_impl(struct make_dev_args *args, size_t sz)
{
	memset(args, 0, sz);
	args->mda_size = sz;
}

int
make_dev_s(struct make_dev_args *args, struct cdev **cdev, const char *fmt,
    ...)
{
	struct make_dev_args a;
	struct cdev *dev;
	va_list ap;
	int error;

	memset(&a, 0, sizeof(a));
	if (args->mda_size > sizeof(a))
		return (EINVAL);
	memcpy(&a, args, args->mda_size);
	if ((a.mda_flags & MAKEDEV_WAITOK) != 0 &&
	    (a.mda_flags & MAKEDEV_NOWAIT) != 0)
		uh_violation("make_dev_s: both MAKEDEV_WAITOK and "
		    "MAKEDEV_NOWAIT");
	/* Without MAKEDEV_NOWAIT, devfs allocates with M_WAITOK. */
	if ((a.mda_flags & MAKEDEV_NOWAIT) == 0)
		ukk_may_sleep("make_dev_s", NULL);
	if (a.mda_devsw == NULL || a.mda_devsw->d_version != D_VERSION) {
		printf("WARNING: Device driver \"%s\" has wrong version and "
		    "is disabled.  Recompile KLD module.\n",
		    a.mda_devsw == NULL || a.mda_devsw->d_name == NULL ?
		    "???" : a.mda_devsw->d_name);
		return (EINVAL);
	}
	dev = dev_alloc();
	uh_sched_lock();
	va_start(ap, fmt);
	error = dev_name_format(dev->si_name, fmt, ap);
	va_end(ap);
	if (error != 0) {
		uh_sched_unlock();
		if ((a.mda_flags & MAKEDEV_CHECKNAME) == 0)
			uh_violation("make_dev_s: bad si_name (error=%d, "
			    "si_name=%s): a panic on FreeBSD", error,
			    dev->si_name);
		uh_free(cdev2priv(dev));
		return (error);
	}
	dev->si_flags = SI_NAMED;
	dev->si_devsw = a.mda_devsw;
	dev->si_uid = a.mda_uid;
	dev->si_gid = a.mda_gid;
	dev->si_mode = a.mda_mode;
	dev->si_drv0 = a.mda_unit;
	dev->si_drv1 = a.mda_si_drv1;
	dev->si_drv2 = a.mda_si_drv2;
	LIST_INSERT_HEAD(&dev_named, dev, si_list);
	dev_created_add_locked(dev->si_name);
	uh_sched_unlock();
	*cdev = dev;
	return (0);
}

struct cdev *
make_dev_alias(struct cdev *pdev, const char *fmt, ...)
{
	struct cdev *dev;
	va_list ap;
	int error;

	ukk_may_sleep("make_dev_alias", NULL);
	dev = dev_alloc();
	uh_sched_lock();
	va_start(ap, fmt);
	error = dev_name_format(dev->si_name, fmt, ap);
	va_end(ap);
	if (error != 0 || pdev->si_devsw == NULL) {
		uh_sched_unlock();
		uh_violation("make_dev_alias: bad alias name \"%s\" of %s "
		    "(error %d): a panic on FreeBSD", dev->si_name,
		    pdev->si_name, error);
		uh_free(cdev2priv(dev));
		return (NULL);
	}
	dev->si_flags = SI_ALIAS | SI_NAMED | SI_CHILD;
	dev->si_parent = pdev;
	LIST_INSERT_HEAD(&pdev->si_children, dev, si_siblings);
	LIST_INSERT_HEAD(&dev_named, dev, si_list);
	uh_sched_unlock();
	return (dev);
}

/* Takes the name (and the aliases' names) away; the scheduler lock held. */
static void
dev_unname_locked(struct cdev *dev)
{
	struct cdev *child;

	while ((child = LIST_FIRST(&dev->si_children)) != NULL) {
		LIST_REMOVE(child, si_siblings);
		child->si_flags &= ~SI_CHILD;
		child->si_parent = NULL;
		dev_unname_locked(child);
		dev_rel_locked(child);
	}
	if ((dev->si_flags & SI_CHILD) != 0) {
		LIST_REMOVE(dev, si_siblings);
		dev->si_flags &= ~SI_CHILD;
		dev->si_parent = NULL;
	}
	if ((dev->si_flags & SI_NAMED) != 0) {
		LIST_REMOVE(dev, si_list);
		dev->si_flags &= ~SI_NAMED;
	}
}

void
destroy_dev(struct cdev *dev)
{
	struct dev_priv *cdp = cdev2priv(dev);
	struct cdev_privdata *p;
	struct cdevsw *csw;

	ukk_may_sleep("destroy_dev", NULL);
	uh_sched_lock();
	if ((dev->si_flags & SI_NAMED) == 0) {
		uh_sched_unlock();
		uh_violation("destroy_dev(%p): not a live device", dev);
		return;
	}
	dev_unname_locked(dev);
	/* No new method calls; d_purge wakes the sleepers among those in
	 * progress, then they are waited for. */
	csw = dev->si_devsw;
	dev->si_devsw = NULL;
	while (csw != NULL && csw->d_purge != NULL &&
	    dev->si_threadcount != 0) {
		uh_sched_unlock();
		csw->d_purge(dev);
		uh_sched_lock();
		if (dev->si_threadcount != 0)
			uh_sched_wait(uh_uptime_ns() + 100000000);
	}
	while (dev->si_threadcount != 0)
		uh_sched_wait(0);
	/* Files still open on it lose their cdevpriv now, as on FreeBSD. */
	while ((p = LIST_FIRST(&cdp->fdpriv)) != NULL) {
		LIST_REMOVE(p, cdpd_list);
		p->cdpd_fp->f_cdevpriv = NULL;
		uh_sched_unlock();
		p->cdpd_dtr(p->cdpd_data);
		uh_free(p);
		uh_sched_lock();
	}
	dev_rel_locked(dev);
	uh_sched_unlock();
}

/* The device named `name` (an alias gives its device), referenced. */
struct cdev *
ukk_dev_lookup(const char *name)
{
	struct cdev *dev;

	uh_sched_lock();
	dev = dev_find_locked(name);
	if (dev != NULL && (dev->si_flags & SI_ALIAS) != 0)
		dev = dev->si_parent;
	if (dev != NULL)
		dev->si_refcount++;
	uh_sched_unlock();
	return (dev);
}

void
ukk_dev_rel(struct cdev *dev)
{
	uh_sched_lock();
	dev_rel_locked(dev);
	uh_sched_unlock();
}

/* dev_refthread(9): the methods, NULL once destroy_dev began. */
struct cdevsw *
ukk_dev_refthread(struct cdev *dev)
{
	struct cdevsw *csw;

	uh_sched_lock();
	csw = dev->si_devsw;
	if (csw != NULL)
		dev->si_threadcount++;
	uh_sched_unlock();
	return (csw);
}

void
ukk_dev_relthread(struct cdev *dev)
{
	uh_sched_lock();
	if (--dev->si_threadcount == 0 && dev->si_devsw == NULL)
		uh_sched_broadcast();
	uh_sched_unlock();
}

int
ukk_dev_exists(const char *name)
{
	int found;

	uh_sched_lock();
	found = dev_find_locked(name) != NULL;
	uh_sched_unlock();
	return (found);
}

int
ukk_dev_created(const char *name)
{
	int i, count = 0;

	uh_sched_lock();
	for (i = 0; name != NULL && i < DEV_CREATED_NAMES; i++)
		if (dev_created[i].count != 0 &&
		    strcmp(dev_created[i].name, name) == 0)
			count = dev_created[i].count;
	if (name == NULL)
		count = dev_created_total;
	uh_sched_unlock();
	return (count);
}

int
devfs_get_cdevpriv(void **datap)
{
	struct file *fp = curthread->td_fpop;
	struct cdev_privdata *p;
	int error = ENOENT;

	if (fp == NULL)
		return (EBADF);
	uh_sched_lock();
	p = fp->f_cdevpriv;
	if (p != NULL) {
		*datap = p->cdpd_data;
		error = 0;
	}
	uh_sched_unlock();
	return (error);
}

int
devfs_set_cdevpriv(void *priv, d_priv_dtor_t *dtr)
{
	struct file *fp = curthread->td_fpop;
	struct cdev_privdata *p;
	int error = EBUSY;

	if (fp == NULL)
		return (ENOENT);
	ukk_may_sleep("devfs_set_cdevpriv", NULL);
	p = uh_alloc(sizeof(*p), 0);
	p->cdpd_fp = fp;
	p->cdpd_data = priv;
	p->cdpd_dtr = dtr;
	uh_sched_lock();
	if (fp->f_cdevpriv == NULL) {
		LIST_INSERT_HEAD(&cdev2priv((struct cdev *)fp->f_data)->fdpriv,
		    p, cdpd_list);
		fp->f_cdevpriv = p;
		error = 0;
	}
	uh_sched_unlock();
	if (error != 0)
		uh_free(p);
	return (error);
}

/*
 * The file's last close (or a failed open): its cdevpriv destructor runs,
 * counted as a thread in the device so that destroy_dev waits for it.
 */
void
ukk_dev_fpdrop(struct file *fp)
{
	struct cdev *dev = fp->f_data;
	struct cdev_privdata *p;

	uh_sched_lock();
	p = fp->f_cdevpriv;
	if (p == NULL) {
		uh_sched_unlock();
		return;
	}
	LIST_REMOVE(p, cdpd_list);
	fp->f_cdevpriv = NULL;
	dev->si_threadcount++;
	uh_sched_unlock();
	p->cdpd_dtr(p->cdpd_data);
	uh_free(p);
	ukk_dev_relthread(dev);
}

/* ---------------------------------------------------------------------- */
/* sysctl                                                                 */

RB_GENERATE(sysctl_oid_list, sysctl_oid, oid_link, cmp_sysctl_oid);

struct sysctl_oid_list sysctl__children = RB_INITIALIZER(&sysctl__children);

struct sysctl_oid sysctl___net = {
	.oid_parent = &sysctl__children,
	.oid_children = RB_INITIALIZER(&sysctl___net.oid_children),
	.oid_number = CTL_NET,
	.oid_kind = CTLTYPE_NODE | CTLFLAG_RW | CTLFLAG_MPSAFE,
	.oid_name = "net",
	.oid_fmt = "N",
	.oid_refcnt = 1,
	.oid_descr = "Network, (see socket.h)",
};

static int sysctl_booted;

/* The static oids join the tree (SYSINIT time on FreeBSD). */
static void
sysctl_boot_locked(void)
{
	if (sysctl_booted)
		return;
	sysctl_booted = 1;
	RB_INSERT(sysctl_oid_list, &sysctl__children, &sysctl___net);
}

static struct sysctl_oid *
sysctl_find_name_locked(struct sysctl_oid_list *list, const char *name,
    size_t len)
{
	struct sysctl_oid *oid;

	RB_FOREACH(oid, sysctl_oid_list, list)
		if (strlen(oid->oid_name) == len &&
		    memcmp(oid->oid_name, name, len) == 0)
			return (oid);
	return (NULL);
}

static char *
str_dup(const char *s)
{
	size_t len;
	char *d;

	if (s == NULL)
		return (NULL);
	len = strlen(s) + 1;
	d = uh_alloc(len, 0);
	memcpy(d, s, len);
	return (d);
}

static void
sysctl_ctx_entry_add_one(struct sysctl_ctx_list *clist, struct sysctl_oid *oid)
{
	struct sysctl_ctx_entry *e;

	e = uh_alloc(sizeof(*e), 0);
	e->entry = oid;
	TAILQ_INSERT_HEAD(clist, e, link);
}

struct sysctl_oid *
sysctl_add_oid(struct sysctl_ctx_list *clist, struct sysctl_oid_list *parent,
    int number, const char *name, int kind, void *arg1, intmax_t arg2,
    int (*handler)(SYSCTL_HANDLER_ARGS), const char *fmt, const char *descr,
    const char *label)
{
	struct sysctl_oid *oid, *last;

	if (parent == NULL)
		return (NULL);
	ukk_may_sleep("sysctl_add_oid", NULL);
	uh_sched_lock();
	sysctl_boot_locked();
	oid = sysctl_find_name_locked(parent, name, strlen(name));
	if (oid != NULL) {
		if ((oid->oid_kind & CTLTYPE) != CTLTYPE_NODE) {
			uh_sched_unlock();
			printf("can't re-use a leaf (%s)!\n", name);
			return (NULL);
		}
		oid->oid_refcnt++;
		uh_sched_unlock();
		if (clist != NULL)
			sysctl_ctx_entry_add_one(clist, oid);
		return (oid);
	}
	oid = uh_alloc(sizeof(*oid), 0);
	RB_INIT(&oid->oid_children);
	oid->oid_parent = parent;
	if (number == OID_AUTO) {
		last = RB_MAX(sysctl_oid_list, parent);
		number = last == NULL || last->oid_number < CTL_AUTO_START ?
		    CTL_AUTO_START : last->oid_number + 1;
	}
	oid->oid_number = number;
	oid->oid_kind = CTLFLAG_DYN | kind;
	oid->oid_arg1 = arg1;
	oid->oid_arg2 = arg2;
	oid->oid_name = str_dup(name);
	oid->oid_handler = handler;
	oid->oid_fmt = fmt;
	oid->oid_refcnt = 1;
	oid->oid_descr = str_dup(descr);
	oid->oid_label = str_dup(label);
	RB_INSERT(sysctl_oid_list, parent, oid);
	uh_sched_unlock();
	if (clist != NULL)
		sysctl_ctx_entry_add_one(clist, oid);
	return (oid);
}

int
sysctl_ctx_init(struct sysctl_ctx_list *clist)
{
	if (clist == NULL)
		return (EINVAL);
	TAILQ_INIT(clist);
	return (0);
}

/* Drops one reference; the last one waits for running handlers. */
static int
sysctl_remove_locked(struct sysctl_oid *oid)
{
	if (oid->oid_refcnt > 1) {
		oid->oid_refcnt--;
		return (0);
	}
	if (!RB_EMPTY(&oid->oid_children))
		return (ENOTEMPTY);
	if ((oid->oid_kind & CTLFLAG_DYN) == 0)
		return (EINVAL);	/* a static oid */
	oid->oid_kind |= CTLFLAG_DYING;
	while (oid->oid_running != 0)
		uh_sched_wait(0);
	RB_REMOVE(sysctl_oid_list, oid->oid_parent, oid);
	uh_free(__DECONST(char *, oid->oid_name));
	uh_free(__DECONST(char *, oid->oid_descr));
	uh_free(__DECONST(char *, oid->oid_label));
	uh_free(oid);
	return (0);
}

int
sysctl_ctx_free(struct sysctl_ctx_list *clist)
{
	struct sysctl_ctx_entry *e;
	int error = 0;

	if (clist == NULL)
		return (EINVAL);
	ukk_may_sleep("sysctl_ctx_free", NULL);
	/* Newest first: children go before their parents. */
	uh_sched_lock();
	while ((e = TAILQ_FIRST(clist)) != NULL) {
		error = sysctl_remove_locked(e->entry);
		if (error != 0)
			break;
		TAILQ_REMOVE(clist, e, link);
		uh_free(e);
	}
	uh_sched_unlock();
	if (error != 0) {
		printf("sysctl_ctx_free: cannot remove %s (error %d)\n",
		    e->entry->oid_name, error);
		return (EBUSY);
	}
	return (0);
}

int
sysctl_handle_int(SYSCTL_HANDLER_ARGS)
{
	int tmpout, error;

	tmpout = arg1 != NULL ? *(int *)arg1 : (int)arg2;
	error = SYSCTL_OUT(req, &tmpout, sizeof(int));
	if (error != 0 || req->newptr == NULL)
		return (error);
	if (arg1 == NULL)
		return (EPERM);
	return (SYSCTL_IN(req, arg1, sizeof(int)));
}

static int
sysctl_old_kernel(struct sysctl_req *req, const void *p, size_t l)
{
	size_t i = 0, origidx = req->oldidx;

	req->oldidx += l;
	if (req->oldptr == NULL)
		return (0);
	if (req->validlen > origidx) {
		i = MIN(l, req->validlen - origidx);
		memcpy((char *)req->oldptr + origidx, p, i);
	}
	return (i < l ? ENOMEM : 0);
}

static int
sysctl_new_kernel(struct sysctl_req *req, void *p, size_t l)
{
	if (req->newptr == NULL)
		return (0);
	if (req->newlen - req->newidx < l)
		return (EINVAL);
	memcpy(p, (const char *)req->newptr + req->newidx, l);
	req->newidx += l;
	return (0);
}

static int
sysctl_old_user(struct sysctl_req *req, const void *p, size_t l)
{
	size_t i = 0, origidx = req->oldidx;
	int error;

	req->oldidx += l;
	if (req->oldptr == NULL)
		return (0);
	ukk_may_sleep("SYSCTL_OUT to an unwired user buffer", NULL);
	if (req->validlen > origidx) {
		i = MIN(l, req->validlen - origidx);
		error = uh_copyout(p, (uintptr_t)req->oldptr + origidx, i);
		if (error != 0)
			return (error);
	}
	return (i < l ? ENOMEM : 0);
}

static int
sysctl_new_user(struct sysctl_req *req, void *p, size_t l)
{
	int error;

	if (req->newptr == NULL)
		return (0);
	if (req->newlen - req->newidx < l)
		return (EINVAL);
	ukk_may_sleep("SYSCTL_IN from user memory", NULL);
	error = uh_copyin((uintptr_t)req->newptr + req->newidx, p, l);
	req->newidx += l;
	return (error);
}

/* Finds the oid named "a.b.c" as sysctl's name2oid does. */
static int
sysctl_lookup_locked(const char *name, struct sysctl_oid **oidp)
{
	struct sysctl_oid_list *list = &sysctl__children;
	struct sysctl_oid *oid = NULL;
	const char *end;

	sysctl_boot_locked();
	while (*name != '\0') {
		for (end = name; *end != '\0' && *end != '.'; end++)
			;
		if (list == NULL)
			return (ENOENT);
		oid = sysctl_find_name_locked(list, name, end - name);
		if (oid == NULL || (oid->oid_kind & CTLFLAG_DYING) != 0)
			return (ENOENT);
		name = *end == '.' ? end + 1 : end;
		list = (oid->oid_kind & CTLTYPE) == CTLTYPE_NODE &&
		    oid->oid_handler == NULL ? &oid->oid_children : NULL;
	}
	if (oid == NULL)
		return (ENOENT);
	*oidp = oid;
	return (0);
}

/* sysctl_root: the oid's rules, then its handler (counted as running). */
static int
sysctl_run(const char *name, struct sysctl_req *req, size_t *retval)
{
	struct sysctl_oid *oid;
	int error;

	uh_sched_lock();
	error = sysctl_lookup_locked(name, &oid);
	if (error == 0 && (oid->oid_kind & CTLTYPE) == CTLTYPE_NODE &&
	    oid->oid_handler == NULL)
		error = EISDIR;
	else if (error == 0 && req->newptr != NULL &&
	    (oid->oid_kind & CTLFLAG_WR) == 0)
		error = EPERM;
	else if (error == 0 && oid->oid_handler == NULL)
		error = EINVAL;
	if (error != 0) {
		uh_sched_unlock();
		return (error);
	}
	oid->oid_running++;
	uh_sched_unlock();

	error = oid->oid_handler(oid, oid->oid_arg1, oid->oid_arg2, req);

	uh_sched_lock();
	if (--oid->oid_running == 0 && (oid->oid_kind & CTLFLAG_DYING) != 0)
		uh_sched_broadcast();
	uh_sched_unlock();
	if (error != 0 && error != ENOMEM)
		return (error);
	if (retval != NULL)
		*retval = req->oldptr != NULL && req->oldidx > req->validlen ?
		    req->validlen : req->oldidx;
	return (error);
}

int
kernel_sysctlbyname(struct thread *td, char *name, void *old, size_t *oldlenp,
    void *new, size_t newlen, size_t *retval, int flags)
{
	struct sysctl_req req;

	memset(&req, 0, sizeof(req));
	req.td = td;
	req.flags = flags;
	if (oldlenp != NULL)
		req.oldlen = *oldlenp;
	req.validlen = req.oldlen;
	req.oldptr = old;
	if (new != NULL) {
		req.newlen = newlen;
		req.newptr = new;
	}
	req.oldfunc = sysctl_old_kernel;
	req.newfunc = sysctl_new_kernel;
	req.lock = REQ_UNWIRED;
	return (sysctl_run(name, &req, retval));
}

int
ukk_sysctl(const char *name, uk_u64 old, uk_size_t *oldlen, uk_u64 newp,
    uk_size_t newlen)
{
	struct sysctl_req req;
	size_t len = 0;
	int error;

	memset(&req, 0, sizeof(req));
	req.td = curthread;
	if (oldlen != NULL)
		req.oldlen = *oldlen;
	req.validlen = req.oldlen;
	req.oldptr = (void *)(uintptr_t)old;
	if (newp != 0) {
		req.newlen = newlen;
		req.newptr = (const void *)(uintptr_t)newp;
	}
	req.oldfunc = sysctl_old_user;
	req.newfunc = sysctl_new_user;
	req.lock = REQ_UNWIRED;
	error = sysctl_run(name, &req, &len);
	if ((error == 0 || error == ENOMEM) && oldlen != NULL)
		*oldlen = len;
	return (error);
}

/* ---------------------------------------------------------------------- */
/* Privileges, the kernel environment                                     */

int
priv_check(struct thread *td, int priv)
{
	if (td != curthread)
		uh_violation("priv_check: not the current thread");
	return (0);
}

struct kenv_var {
	struct kenv_var *next;
	char *name;
	char *value;
};

static struct kenv_var *kenv_list;

void
ukk_setenv(const char *name, const char *value)
{
	struct kenv_var *v;

	uh_sched_lock();
	for (v = kenv_list; v != NULL; v = v->next)
		if (strcmp(v->name, name) == 0)
			break;
	if (v == NULL) {
		v = uh_alloc(sizeof(*v), 0);
		v->name = str_dup(name);
		v->next = kenv_list;
		kenv_list = v;
	} else
		uh_free(v->value);
	v->value = str_dup(value);
	uh_sched_unlock();
}

/*
 * getenv_quad's number: strtoq(value, &end, 0) with an optional k, m, g or
 * t suffix (powers of 1024), nothing after it. 0 if it is not one.
 */
static int
kenv_parse(const char *s, int64_t *out)
{
	uint64_t v = 0;
	int base = 10, d, neg = 0, any = 0;

	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	} else if (s[0] == '0')
		base = 8;
	for (;; s++, any = 1) {
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		if (d >= base)
			break;
		v = v * base + d;
	}
	if (!any)
		return (0);
	switch (*s) {
	case 't': case 'T':
		v <<= 10;
		/* FALLTHROUGH */
	case 'g': case 'G':
		v <<= 10;
		/* FALLTHROUGH */
	case 'm': case 'M':
		v <<= 10;
		/* FALLTHROUGH */
	case 'k': case 'K':
		v <<= 10;
		s++;
		break;
	}
	if (*s != '\0')
		return (0);
	*out = neg ? -(int64_t)v : (int64_t)v;
	return (1);
}

int
getenv_int(const char *name, int *data)
{
	struct kenv_var *v;
	int64_t value;
	int found = 0;

	uh_sched_lock();
	for (v = kenv_list; v != NULL; v = v->next)
		if (strcmp(v->name, name) == 0) {
			found = kenv_parse(v->value, &value);
			break;
		}
	uh_sched_unlock();
	if (found)
		*data = (int)value;
	return (found);
}

/* ---------------------------------------------------------------------- */
/* A GENERIC kernel's bpf(4), as far as the module can see it             */

static int
fake_bpf_open(struct cdev *dev, int oflags, int devtype, struct thread *td)
{
	return (ENXIO);
}

static struct cdevsw fake_bpf_cdevsw = {
	.d_version = D_VERSION,
	.d_open = fake_bpf_open,
	.d_name = "bpf",
};

static int fake_bpf_maxinsns = 512;

void
ukk_fake_builtin_bpf(void)
{
	struct make_dev_args args;
	struct sysctl_oid *node;
	struct cdev *dev;

	make_dev_args_init(&args);
	args.mda_flags = MAKEDEV_WAITOK | MAKEDEV_CHECKNAME;
	args.mda_devsw = &fake_bpf_cdevsw;
	args.mda_uid = UID_ROOT;
	args.mda_gid = GID_WHEEL;
	args.mda_mode = 0600;
	if (make_dev_s(&args, &dev, "bpf") != 0)
		uh_violation("ukk_fake_builtin_bpf: /dev/bpf exists");
	node = sysctl_add_oid(NULL, SYSCTL_STATIC_CHILDREN(_net), OID_AUTO,
	    "bpf", CTLTYPE_NODE | CTLFLAG_RW | CTLFLAG_MPSAFE, NULL, 0, NULL,
	    "N", "bpf sysctl", NULL);
	if (node == NULL || sysctl_add_oid(NULL, SYSCTL_CHILDREN(node),
	    OID_AUTO, "maxinsns", CTLTYPE_INT | CTLFLAG_RD | CTLFLAG_MPSAFE,
	    &fake_bpf_maxinsns, 0, sysctl_handle_int, "I",
	    "Maximum bpf program instructions", NULL) == NULL)
		uh_violation("ukk_fake_builtin_bpf: net.bpf.maxinsns exists");
}

/*
 * kpi_sys.c: the emulated process's system calls on devices, with
 * FreeBSD's semantics (sys_generic.c's ioctl, read, write and poll,
 * kern_descrip.c's fcntl(F_SETFL), kern_event.c's registration of a knote,
 * devfs_vnops.c's file operations), and the KPI drivers use to notify:
 * select(9) (selrecord, selwakeuppri, seldrain), knlists and knote(9),
 * and SIGIO ownership (fsetown, fgetown, funsetown, pgsigio).
 *
 * Descriptors are slots of one table of FreeBSD struct files. Every cdevsw
 * method is called as devfs calls it: counted as a thread in the device
 * (destroy_dev waits for those) and with curthread->td_fpop set to the
 * file, so that devfs_get_cdevpriv finds the file's data.
 *
 * select(9) is one generation counter under the scheduler lock: a poll
 * that finds nothing ready sleeps until any selwakeup or its deadline, then
 * polls every descriptor again.
 */

#include <sys/param.h>
#include <sys/systm.h>
#include <sys/conf.h>
#include <sys/event.h>
#include <sys/fcntl.h>
#include <sys/file.h>
#include <sys/filedesc.h>
#include <sys/filio.h>
#include <sys/ioccom.h>
#include <sys/limits.h>
#include <sys/lock.h>
#include <sys/mutex.h>
#include <sys/poll.h>
#include <sys/proc.h>
#include <sys/selinfo.h>
#include <sys/signalvar.h>
#include <sys/sigio.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "ukld.h"

/* kpi_dev.c */
struct cdev *ukk_dev_lookup(const char *name);
struct cdevsw *ukk_dev_refthread(struct cdev *dev);
void ukk_dev_relthread(struct cdev *dev);
void ukk_dev_rel(struct cdev *dev);
void ukk_dev_fpdrop(struct file *fp);
/* kpi_vm.c */
void ukk_vm_init(void);

#define	SYS_NFILES	256
#define	SYS_FD_FIRST	3		/* 0, 1 and 2 are the process's stdio */
#define	SYS_DEVFS_IOSIZE_MAX	INT_MAX	/* devfs_iosize_max_clamp is 1 */

static struct {
	struct file *fp;
	int flags;			/* UF_EXCLOSE */
} sys_fds[SYS_NFILES];
static int sys_nopen;

/* ---------------------------------------------------------------------- */
/* Files                                                                  */

/* fget: the open file of fd, referenced; NULL if fd is not open. */
static struct file *
sys_fget(int fd)
{
	struct file *fp = NULL;

	uh_sched_lock();
	if (fd >= 0 && fd < SYS_NFILES && sys_fds[fd].fp != NULL) {
		fp = sys_fds[fd].fp;
		fp->f_count++;
	}
	uh_sched_unlock();
	return (fp);
}

/* fdrop: the last reference closes the file (devfs_close, devfs_fpdrop). */
static int
sys_fdrop(struct file *fp)
{
	struct thread *td = curthread;
	struct cdev *dev = fp->f_data;
	struct cdevsw *csw;
	struct file *fpop;
	int error = 0, last;

	uh_sched_lock();
	if (--fp->f_count != 0) {
		uh_sched_unlock();
		return (0);
	}
	last = --dev->si_usecount == 0;
	uh_sched_unlock();

	csw = ukk_dev_refthread(dev);
	if (csw != NULL) {
		if (csw->d_close != NULL &&
		    (last || (csw->d_flags & D_TRACKCLOSE) != 0)) {
			fpop = td->td_fpop;
			td->td_fpop = fp;
			error = csw->d_close(dev,
			    fp->f_flag | (last ? FLASTCLOSE : 0), S_IFCHR, td);
			td->td_fpop = fpop;
		}
		ukk_dev_relthread(dev);
	}
	ukk_dev_fpdrop(fp);
	ukk_dev_rel(dev);
	uh_free(fp);
	return (error);
}

/*
 * devfs_fp_check: the device's methods for a call on fp, counted as a
 * thread in the device, td_fpop set (restored by sys_devcall_end). NULL
 * once the device is destroyed.
 */
static struct cdevsw *
sys_devcall_begin(struct file *fp, struct file **fpop)
{
	struct cdevsw *csw;

	csw = ukk_dev_refthread(fp->f_data);
	if (csw != NULL) {
		*fpop = curthread->td_fpop;
		curthread->td_fpop = fp;
	}
	return (csw);
}

static void
sys_devcall_end(struct file *fp, struct file *fpop)
{
	curthread->td_fpop = fpop;
	ukk_dev_relthread(fp->f_data);
}

int
ukk_sys_open(const char *path, int fflags, int *fd)
{
	struct thread *td = curthread;
	struct cdevsw *csw;
	struct cdev *dev;
	struct file *fp, *fpop;
	int error, i;

	ukk_vm_init();
	if (path[0] != '/' || path[1] != 'd' || path[2] != 'e' ||
	    path[3] != 'v' || path[4] != '/')
		return (ENOENT);
	if ((fflags & (FREAD | FWRITE)) == 0)
		return (EINVAL);
	dev = ukk_dev_lookup(path + 5);
	if (dev == NULL)
		return (ENOENT);
	fp = uh_alloc(sizeof(*fp), 0);
	fp->f_flag = fflags & FMASK;
	fp->f_count = 1;
	fp->f_data = dev;
	fp->f_type = DTYPE_VNODE;
	fp->f_cred = td->td_ucred;

	csw = sys_devcall_begin(fp, &fpop);
	if (csw == NULL)
		error = ENXIO;
	else {
		error = csw->d_open != NULL ?
		    csw->d_open(dev, fp->f_flag, S_IFCHR, td) : 0;
		/* A failed open loses the cdevpriv it may have set. */
		if (error != 0)
			ukk_dev_fpdrop(fp);
		sys_devcall_end(fp, fpop);
	}
	if (error != 0) {
		ukk_dev_rel(dev);
		uh_free(fp);
		return (error == ERESTART ? EINTR : error);
	}

	uh_sched_lock();
	dev->si_usecount++;
	for (i = SYS_FD_FIRST; i < SYS_NFILES && sys_fds[i].fp != NULL; i++)
		;
	if (i < SYS_NFILES) {
		sys_fds[i].fp = fp;
		sys_fds[i].flags = 0;
		sys_nopen++;
	}
	uh_sched_unlock();
	if (i == SYS_NFILES) {
		(void)sys_fdrop(fp);
		return (EMFILE);
	}
	*fd = i;
	return (0);
}

int
ukk_sys_close(int fd)
{
	struct file *fp = NULL;

	uh_sched_lock();
	if (fd >= 0 && fd < SYS_NFILES && sys_fds[fd].fp != NULL) {
		fp = sys_fds[fd].fp;
		sys_fds[fd].fp = NULL;
		sys_nopen--;
	}
	uh_sched_unlock();
	if (fp == NULL)
		return (EBADF);
	return (sys_fdrop(fp));
}

int
ukk_sys_open_count(void)
{
	int n;

	uh_sched_lock();
	n = sys_nopen;
	uh_sched_unlock();
	return (n);
}

/* ---------------------------------------------------------------------- */
/* ioctl, fcntl                                                           */

/* devfs_ioctl_f */
static int
sys_devioctl(struct file *fp, u_long com, void *data)
{
	struct cdevsw *csw;
	struct file *fpop;
	int error;

	csw = sys_devcall_begin(fp, &fpop);
	if (csw == NULL)
		return (ENXIO);
	if (com == FIODTYPE) {
		*(int *)data = csw->d_flags & D_TYPEMASK;
		error = 0;
	} else if (csw->d_ioctl == NULL)
		error = ENODEV;
	else
		error = csw->d_ioctl(fp->f_data, com, data, fp->f_flag,
		    curthread);
	sys_devcall_end(fp, fpop);
	return (error == ENOIOCTL ? ENOTTY : error);
}

/* kern_ioctl */
static int
sys_kern_ioctl(int fd, u_long com, void *data)
{
	struct file *fp;
	int error, tmp;

	fp = sys_fget(fd);
	if (fp == NULL)
		return (EBADF);
	if ((fp->f_flag & (FREAD | FWRITE)) == 0) {
		(void)sys_fdrop(fp);
		return (EBADF);
	}
	switch (com) {
	case FIONCLEX:
	case FIOCLEX:
		uh_sched_lock();
		if (sys_fds[fd].fp == fp)
			sys_fds[fd].flags = com == FIOCLEX ? UF_EXCLOSE : 0;
		uh_sched_unlock();
		(void)sys_fdrop(fp);
		return (0);
	case FIONBIO:
	case FIOASYNC:
		tmp = *(int *)data;
		if (tmp != 0)
			atomic_set_int(&fp->f_flag,
			    com == FIONBIO ? FNONBLOCK : FASYNC);
		else
			atomic_clear_int(&fp->f_flag,
			    com == FIONBIO ? FNONBLOCK : FASYNC);
		data = &tmp;
		break;
	}
	error = sys_devioctl(fp, com, data);
	(void)sys_fdrop(fp);
	return (error);
}

/* sys_ioctl: the argument's size and direction from the command. */
int
ukk_sys_ioctl(int fd, unsigned long cmd, uk_u64 uarg)
{
	char buf[IOCPARM_MAX] __aligned(16);
	uint64_t argval = uarg;
	u_long com = cmd;
	void *data;
	int error, iarg;
	u_int size;

	if (com > 0xffffffff) {
		printf("WARNING pid %d (%s): ioctl sign-extension ioctl %lx\n",
		    curthread->td_proc->p_pid, "ukld", com);
		com &= 0xffffffff;
	}
	size = IOCPARM_LEN(com);
	if (size > IOCPARM_MAX ||
	    (com & (IOC_VOID | IOC_IN | IOC_OUT)) == 0 ||
	    ((com & IOC_VOID) != 0 && size > 0 && size != sizeof(int)))
		return (ENOTTY);
	if (size > 0) {
		if ((com & IOC_VOID) != 0) {
			/* An int argument, passed by value. */
			iarg = (int)uarg;
			data = &iarg;
			size = 0;
		} else
			data = buf;
	} else
		data = &argval;
	if ((com & IOC_IN) != 0) {
		error = uh_copyin(uarg, data, size);
		if (error != 0)
			return (error);
	} else if ((com & IOC_OUT) != 0)
		memset(data, 0, size);
	error = sys_kern_ioctl(fd, com, data);
	if (error == 0 && (com & IOC_OUT) != 0)
		error = uh_copyout(data, uarg, size);
	return (error);
}

/* kern_fcntl(F_SETFL): FNONBLOCK and FASYNC reach the device too. */
int
ukk_sys_setfl(int fd, int fflags)
{
	struct file *fp;
	u_int old, new, got_set, got_cleared;
	int error, tmp;

	fp = sys_fget(fd);
	if (fp == NULL)
		return (EBADF);
	do {
		old = fp->f_flag;
		new = (old & ~FCNTLFLAGS) | (fflags & FCNTLFLAGS);
	} while (atomic_cmpset_int(&fp->f_flag, old, new) == 0);
	got_set = new & ~old;
	got_cleared = old & ~new;
	tmp = fp->f_flag & FNONBLOCK;
	error = sys_devioctl(fp, FIONBIO, &tmp);
	if (error == 0) {
		tmp = fp->f_flag & FASYNC;
		error = sys_devioctl(fp, FIOASYNC, &tmp);
		if (error != 0) {
			atomic_clear_int(&fp->f_flag, FNONBLOCK);
			tmp = 0;
			(void)sys_devioctl(fp, FIONBIO, &tmp);
		}
	}
	if (error != 0) {
		do {
			old = fp->f_flag;
			new = ((old & ~FCNTLFLAGS) | got_cleared) & ~got_set;
		} while (atomic_cmpset_int(&fp->f_flag, old, new) == 0);
	}
	(void)sys_fdrop(fp);
	return (error);
}

/* ---------------------------------------------------------------------- */
/* read, write                                                            */

/* dofileread/dofilewrite over devfs_read_f/devfs_write_f. */
static int
sys_rw(int fd, uk_u64 ubuf, uk_size_t len, uk_size_t *done, enum uio_rw rw)
{
	struct iovec aiov;
	struct uio auio;
	struct cdevsw *csw;
	struct file *fp, *fpop;
	int error, ioflag;

	*done = 0;
	if (len > SSIZE_MAX)
		return (EINVAL);
	fp = sys_fget(fd);
	if (fp == NULL)
		return (EBADF);
	if ((fp->f_flag & (rw == UIO_READ ? FREAD : FWRITE)) == 0) {
		(void)sys_fdrop(fp);
		return (EBADF);
	}
	if (len == 0 && rw == UIO_READ) {
		(void)sys_fdrop(fp);
		return (0);
	}
	aiov.iov_base = (void *)(uintptr_t)ubuf;
	aiov.iov_len = len;
	auio.uio_iov = &aiov;
	auio.uio_iovcnt = 1;
	auio.uio_offset = fp->f_offset;
	auio.uio_resid = len;
	auio.uio_segflg = UIO_USERSPACE;
	auio.uio_rw = rw;
	auio.uio_td = curthread;
	if (len > SYS_DEVFS_IOSIZE_MAX) {
		(void)sys_fdrop(fp);
		return (EINVAL);
	}
	csw = sys_devcall_begin(fp, &fpop);
	if (csw == NULL)
		error = ENXIO;
	else {
		/* As devfs: FNONBLOCK is IO_NDELAY (the same bit). Files
		 * here never have O_DIRECT. */
		ioflag = fp->f_flag & O_NONBLOCK;
		if (rw == UIO_READ)
			error = csw->d_read != NULL ?
			    csw->d_read(fp->f_data, &auio, ioflag) : ENODEV;
		else
			error = csw->d_write != NULL ?
			    csw->d_write(fp->f_data, &auio, ioflag) : ENODEV;
		sys_devcall_end(fp, fpop);
	}
	/* A partial transfer is a success. */
	if (error != 0 && (size_t)auio.uio_resid != len &&
	    (error == ERESTART || error == EINTR || error == EWOULDBLOCK))
		error = 0;
	if (error == ERESTART)
		error = EINTR;
	*done = len - auio.uio_resid;
	(void)sys_fdrop(fp);
	return (error);
}

int
ukk_sys_read(int fd, uk_u64 ubuf, uk_size_t len, uk_size_t *done)
{
	return (sys_rw(fd, ubuf, len, done, UIO_READ));
}

int
ukk_sys_write(int fd, uk_u64 ubuf, uk_size_t len, uk_size_t *done)
{
	return (sys_rw(fd, ubuf, len, done, UIO_WRITE));
}

/* ---------------------------------------------------------------------- */
/* select(9) and poll(2)                                                  */

static uint64_t sel_gen;
/* Threads asleep in poll(2): a wakeup with none wakes no one (FreeBSD's
 * selwakeup finds no thread on the selinfo), not every sleeper of the
 * emulation's one condition variable, the callout thread among them. */
static int sel_sleepers;
/* td_sel while a thread polls (selrecord's precondition). */
static char sel_polling;

void
selrecord(struct thread *td, struct selinfo *sip)
{
	if (td != curthread || td->td_sel != (struct seltd *)&sel_polling)
		uh_violation("selrecord outside a poll of the current thread");
}

static void
sel_wakeup(void)
{
	uh_sched_lock();
	sel_gen++;
	if (sel_sleepers != 0)
		uh_sched_broadcast();
	uh_sched_unlock();
}

void
selwakeuppri(struct selinfo *sip, int pri)
{
	sel_wakeup();
}

void
seldrain(struct selinfo *sip)
{
	sel_wakeup();
}

/* devfs_poll_f; a destroyed device polls as poll_no_poll. */
static int
sys_devpoll(struct file *fp, int events)
{
	struct cdevsw *csw;
	struct file *fpop;
	int revents;

	csw = sys_devcall_begin(fp, &fpop);
	if (csw == NULL || csw->d_poll == NULL) {
		if (csw != NULL)
			sys_devcall_end(fp, fpop);
		if ((events & ~POLLSTANDARD) != 0)
			return (POLLNVAL);
		return (events & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM));
	}
	revents = csw->d_poll(fp->f_data, events, curthread);
	sys_devcall_end(fp, fpop);
	return (revents);
}

/* pollscan: the number of descriptors with events. */
static int
sys_pollscan(struct ukk_pollfd *fds, int nfds)
{
	struct file *fp;
	int i, n = 0;

	for (i = 0; i < nfds; i++) {
		if (fds[i].fd < 0) {
			fds[i].revents = 0;
			continue;
		}
		fp = sys_fget(fds[i].fd);
		if (fp == NULL)
			fds[i].revents = POLLNVAL;
		else {
			fds[i].revents = sys_devpoll(fp, fds[i].events);
			/* POSIX: never POLLOUT with POLLHUP. */
			if ((fds[i].revents & POLLHUP) != 0)
				fds[i].revents &= ~POLLOUT;
			(void)sys_fdrop(fp);
		}
		if (fds[i].revents != 0)
			n++;
	}
	return (n);
}

int
ukk_sys_poll(struct ukk_pollfd *fds, int nfds, int timeout_ms, int *nready)
{
	struct thread *td = curthread;
	uint64_t deadline = 0, gen;
	int n, timedout = 0;

	*nready = 0;
	if (nfds < 0 || nfds > SYS_NFILES)
		return (EINVAL);
	if (timeout_ms != INFTIM) {
		if (timeout_ms < 0)
			return (EINVAL);
		deadline = uh_uptime_ns() + (uint64_t)timeout_ms * 1000000;
	}
	td->td_sel = (struct seltd *)&sel_polling;
	for (;;) {
		/* Read before polling: a wakeup after the scan is not lost. */
		uh_sched_lock();
		gen = sel_gen;
		uh_sched_unlock();
		n = sys_pollscan(fds, nfds);
		if (n != 0 || timeout_ms == 0 || timedout)
			break;
		uh_sched_lock();
		sel_sleepers++;
		while (sel_gen == gen && !timedout)
			timedout = uh_sched_wait(deadline);
		sel_sleepers--;
		uh_sched_unlock();
	}
	td->td_sel = NULL;
	*nready = n;
	return (0);
}

/* ---------------------------------------------------------------------- */
/* knlists, knote(9), kevent                                              */

static void
knlist_mtx_lock(void *arg)
{
	mtx_lock((struct mtx *)arg);
}

static void
knlist_mtx_unlock(void *arg)
{
	mtx_unlock((struct mtx *)arg);
}

static void
knlist_mtx_assert(void *arg, int what)
{
	int owned = mtx_owned((struct mtx *)arg);

	if (what == LA_LOCKED && !owned)
		uh_violation("knlist: its mutex is not held as the caller "
		    "says");
	else if (what == LA_UNLOCKED && owned)
		uh_violation("knlist: its mutex is held, the caller says it "
		    "is not (islocked 0)");
}

static void
knl_assert(struct knlist *knl, int islocked)
{
	knl->kl_assert_lock(knl->kl_lockarg, islocked ? LA_LOCKED :
	    LA_UNLOCKED);
}

void
knlist_init_mtx(struct knlist *knl, struct mtx *lock)
{
	if (lock == NULL)
		uh_violation("knlist_init_mtx: the harness has no global "
		    "knlist lock; pass a mutex");
	knl->kl_lockarg = lock;
	knl->kl_lock = knlist_mtx_lock;
	knl->kl_unlock = knlist_mtx_unlock;
	knl->kl_assert_lock = knlist_mtx_assert;
	knl->kl_autodestroy = 0;
	SLIST_INIT(&knl->kl_list);
}

void
knlist_add(struct knlist *knl, struct knote *kn, int islocked)
{
	knl_assert(knl, islocked);
	if (!islocked)
		knl->kl_lock(knl->kl_lockarg);
	SLIST_INSERT_HEAD(&knl->kl_list, kn, kn_selnext);
	kn->kn_knlist = knl;
	kn->kn_status &= ~KN_DETACHED;
	if (!islocked)
		knl->kl_unlock(knl->kl_lockarg);
}

void
knlist_remove(struct knlist *knl, struct knote *kn, int islocked)
{
	struct knote *k;

	knl_assert(knl, islocked);
	if (!islocked)
		knl->kl_lock(knl->kl_lockarg);
	SLIST_FOREACH(k, &knl->kl_list, kn_selnext)
		if (k == kn)
			break;
	if (k == NULL)
		uh_violation("knlist_remove: knote %p is not on knlist %p",
		    kn, knl);
	else {
		SLIST_REMOVE(&knl->kl_list, kn, knote, kn_selnext);
		kn->kn_knlist = NULL;
		kn->kn_status |= KN_DETACHED;
	}
	if (!islocked)
		knl->kl_unlock(knl->kl_lockarg);
}

/*
 * knlist_clear (killkn 0) marks the knotes EOF and one-shot; knlist_delete
 * (killkn 1) would free them: here they belong to the kevent probe, which
 * frees them, so both only detach.
 */
void
knlist_cleardel(struct knlist *knl, struct thread *td, int islocked,
    int killkn)
{
	struct knote *kn;

	knl_assert(knl, islocked);
	if (!islocked)
		knl->kl_lock(knl->kl_lockarg);
	while ((kn = SLIST_FIRST(&knl->kl_list)) != NULL) {
		SLIST_REMOVE_HEAD(&knl->kl_list, kn_selnext);
		kn->kn_knlist = NULL;
		kn->kn_status |= KN_DETACHED;
		if (!killkn)
			kn->kn_flags |= EV_EOF | EV_ONESHOT;
	}
	if (!islocked)
		knl->kl_unlock(knl->kl_lockarg);
}

void
knlist_destroy(struct knlist *knl)
{
	if (!SLIST_EMPTY(&knl->kl_list))
		uh_violation("knlist_destroy(%p): knotes still on it", knl);
	knl->kl_lockarg = NULL;
	knl->kl_lock = NULL;
	knl->kl_unlock = NULL;
	SLIST_INIT(&knl->kl_list);
}

void
knote(struct knlist *list, long hint, int lockflags)
{
	struct knote *kn, *tkn;

	if (list == NULL)
		return;
	knl_assert(list, lockflags & KNF_LISTLOCKED);
	if ((lockflags & KNF_LISTLOCKED) == 0)
		list->kl_lock(list->kl_lockarg);
	SLIST_FOREACH_SAFE(kn, &list->kl_list, kn_selnext, tkn)
		if (kn->kn_fop->f_event(kn, hint))
			kn->kn_status |= KN_ACTIVE;
	if ((lockflags & KNF_LISTLOCKED) == 0)
		list->kl_unlock(list->kl_lockarg);
}

/*
 * kevent(EV_ADD) of one knote, then its first f_event (under its knlist's
 * lock, as kqueue_register), then EV_DELETE. The whole probe counts as a
 * thread in the device.
 */
int
ukk_sys_kevent_probe(int fd, int filter, int *active, uk_i64 *data)
{
	struct cdevsw *csw;
	struct file *fp, *fpop;
	struct knlist *knl;
	struct knote *kn;
	int error, event;

	*active = 0;
	*data = 0;
	if (filter != EVFILT_READ && filter != EVFILT_WRITE)
		return (EINVAL);
	fp = sys_fget(fd);
	if (fp == NULL)
		return (EBADF);
	kn = uh_alloc(sizeof(*kn), 0);
	kn->kn_id = fd;
	kn->kn_filter = filter;
	kn->kn_flags = EV_ADD;
	kn->kn_fp = fp;
	kn->kn_status = KN_DETACHED;
	csw = sys_devcall_begin(fp, &fpop);
	if (csw == NULL)
		error = ENXIO;
	else {
		error = csw->d_kqfilter != NULL ?
		    csw->d_kqfilter(fp->f_data, kn) : ENODEV;
		curthread->td_fpop = fpop;
		if (error == 0 && kn->kn_fop == NULL) {
			uh_violation("d_kqfilter succeeded without kn_fop");
			error = EINVAL;
		}
		if (error == 0) {
			knl = kn->kn_knlist;
			if (knl != NULL)
				knl->kl_lock(knl->kl_lockarg);
			event = kn->kn_fop->f_event(kn, 0);
			if (knl != NULL)
				knl->kl_unlock(knl->kl_lockarg);
			*active = event != 0;
			*data = kn->kn_data;
			if ((kn->kn_status & KN_DETACHED) == 0)
				kn->kn_fop->f_detach(kn);
		}
		ukk_dev_relthread(fp->f_data);
	}
	uh_free(kn);
	(void)sys_fdrop(fp);
	return (error);
}

/* ---------------------------------------------------------------------- */
/* SIGIO                                                                  */

/* The process is the only one, and the leader of its group. */
int
fsetown(pid_t pgid, struct sigio **sigiop)
{
	struct sigio *sigio, *old;
	pid_t pid = curthread->td_proc->p_pid;

	if (pgid == 0) {
		funsetown(sigiop);
		return (0);
	}
	if (pgid != pid && pgid != -pid)
		return (ESRCH);
	sigio = uh_alloc(sizeof(*sigio), 0);
	if (pgid > 0)
		sigio->sio_proc = curthread->td_proc;
	else
		sigio->sio_pgrp = curthread->td_proc->p_pgrp;
	sigio->sio_pgid = pgid;
	sigio->sio_ucred = curthread->td_ucred;
	sigio->sio_myref = sigiop;
	uh_sched_lock();
	old = *sigiop;
	*sigiop = sigio;
	uh_sched_unlock();
	if (old != NULL)
		uh_free(old);
	return (0);
}

pid_t
fgetown(struct sigio **sigiop)
{
	pid_t pgid;

	uh_sched_lock();
	pgid = *sigiop != NULL ? (*sigiop)->sio_pgid : 0;
	uh_sched_unlock();
	return (pgid);
}

void
funsetown(struct sigio **sigiop)
{
	struct sigio *sigio;

	uh_sched_lock();
	sigio = *sigiop;
	*sigiop = NULL;
	uh_sched_unlock();
	if (sigio != NULL)
		uh_free(sigio);
}

void
pgsigio(struct sigio **sigiop, int sig, int checkctty)
{
	int owned;

	uh_sched_lock();
	owned = *sigiop != NULL;
	uh_sched_unlock();
	if (owned)
		uh_signal_process(sig);
}

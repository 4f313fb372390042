# A minimal stand-in for the ports framework's Mk/bsd.port.mk, written for
# scripts/freebsd/port-check.sh: just enough for `bmake -n` to show what
# the zbpf port runs and installs on Linux, where there is no ports tree.
# It checks the variables every port must set, includes the USES handlers
# it knows (kmod), and chains extract, build and install (staging) to the
# port's do-* targets, as the real framework does.

LOCALBASE?=	/usr/local
PREFIX?=	${LOCALBASE}
SRC_BASE?=	/usr/src
LLVM_DEFAULT?=	19
WRKDIR?=	${.CURDIR}/work
WRKSRC?=	${WRKDIR}/${PORTNAME}-${DISTVERSION}
STAGEDIR?=	${WRKDIR}/stage
MKDIR?=		/bin/mkdir -p
TAR?=		/usr/bin/tar
SETENV?=	/usr/bin/env
MAKE_CMD?=	/usr/bin/make
INSTALL_KLD?=	/usr/bin/install -m 555
INSTALL_MAN?=	/usr/bin/install -m 444

.for v in PORTNAME DISTVERSION CATEGORIES MAINTAINER COMMENT WWW LICENSE USES
.if !defined(${v}) || empty(${v})
.error port stub: ${v} is not set
.endif
.endfor

.for u in ${USES}
.if !exists(${.PARSEDIR}/Uses/${u}.mk)
.error port stub: USES=${u} is not known to the stub
.endif
.include "${.PARSEDIR}/Uses/${u}.mk"
.endfor

.for f in pkg-descr pkg-plist
.if !exists(${.CURDIR}/${f})
.error port stub: ${f} is missing
.endif
.endfor

# The plist as the framework expands it.
plist:
	@sed ${PLIST_SUB:C/^([^=]*)=\"?([^\"]*)\"?$/-e s,%%\1%%,\2,/} ${.CURDIR}/pkg-plist

extract: do-extract
build: extract do-build
install: build ${STAGEDIR}${KMODDIR} do-install

${STAGEDIR}${KMODDIR}:
	${MKDIR} ${.TARGET}

.PHONY: plist extract build install

/*
 * config.h for building libpcap 1.10.3 for FreeBSD 14/15 (amd64) with
 * clang -target x86_64-unknown-freebsd15.0 against FreeBSD's headers, in
 * place of the one libpcap's configure writes on FreeBSD. Written for zbpf's
 * scripts/libpcap/check.sh; the values are what a FreeBSD base system has.
 * Zero-copy BPF (HAVE_ZEROCOPY_BPF) is not set here on purpose: the patched
 * pcap-bpf.c must find it by itself from <net/bpf.h>.
 */
#define HAVE_ASPRINTF 1
#define HAVE_VASPRINTF 1
#define HAVE_STRLCAT 1
#define HAVE_STRLCPY 1
#define HAVE_STRTOK_R 1
#define HAVE_POSIX_STRERROR_R 1
#define HAVE_STRERROR 1
#define HAVE_FFS 1
#define STRINGS_H_DECLARES_FFS 1
#define HAVE_FSEEKO 1
#define HAVE_VSYSLOG 1
#define HAVE_ETHER_HOSTTON 1
#define HAVE_DECL_ETHER_HOSTTON 1
#define NET_ETHERNET_H_DECLARES_ETHER_HOSTTON 1
#define HAVE_STRUCT_ETHER_ADDR 1
#define HAVE_INTTYPES_H 1
#define HAVE_STDINT_H 1
#define HAVE_STDLIB_H 1
#define HAVE_STRING_H 1
#define HAVE_STRINGS_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_SYS_TYPES_H 1
#define HAVE_UNISTD_H 1
#define HAVE_MEMORY_H 1
#define STDC_HEADERS 1
#define HAVE_NET_BPF_H 1
#define HAVE_NET_IF_H 1
#define HAVE_NET_IF_DL_H 1
#define HAVE_NET_IF_MEDIA_H 1
#define HAVE_NET_IF_TYPES_H 1
#define HAVE_SYS_IOCCOM_H 1
#define HAVE_SYS_SOCKIO_H 1
#define HAVE_SOCKLEN_T 1
#define HAVE_STRUCT_SOCKADDR_SA_LEN 1
#define HAVE_STRUCT_SOCKADDR_STORAGE 1
#define HAVE_STRUCT_MSGHDR_MSG_CONTROL 1
#define HAVE_STRUCT_MSGHDR_MSG_FLAGS 1
#define HAVE___ATOMIC_LOAD_N 1
#define HAVE___ATOMIC_STORE_N 1
#define INET6 1
#define SIZEOF_VOID_P 8
#define SIZEOF_CONST_VOID_P 8
#define YYTEXT_POINTER 1
#define PACKAGE_NAME "pcap"
#define PACKAGE_TARNAME "pcap"
#define PACKAGE_VERSION "1.10.3"
#define PACKAGE_STRING "pcap 1.10.3"
#define PACKAGE_BUGREPORT ""
#define PACKAGE_URL ""

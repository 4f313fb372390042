/*
 * config.h for building libpcap 1.10.3 on Linux (glibc) with the BPF
 * capture module, pcap-bpf.c, against the zbpf simulator
 * (tests/sim/run.sh). HAVE_ZEROCOPY_BPF is not set: the patched pcap-bpf.c
 * finds zero-copy BPF by itself from the <net/bpf.h> the simulator gives.
 */
#define HAVE_ASPRINTF 1
#define HAVE_VASPRINTF 1
#define HAVE_STRTOK_R 1
#define HAVE_GNU_STRERROR_R 1
#define HAVE_STRERROR 1
#define HAVE_FFS 1
#define STRINGS_H_DECLARES_FFS 1
#define HAVE_FSEEKO 1
#define HAVE_VSYSLOG 1
#define HAVE_ETHER_HOSTTON 1
#define HAVE_DECL_ETHER_HOSTTON 1
#define NETINET_ETHER_H_DECLARES_ETHER_HOSTTON 1
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
#define HAVE_SOCKLEN_T 1
#define HAVE_STRUCT_SOCKADDR_STORAGE 1
#define HAVE_STRUCT_MSGHDR_MSG_CONTROL 1
#define HAVE_STRUCT_MSGHDR_MSG_FLAGS 1
#define HAVE_LINUX_GETNETBYNAME_R 1
#define HAVE_LINUX_GETPROTOBYNAME_R 1
#define HAVE___ATOMIC_LOAD_N 1
#define HAVE___ATOMIC_STORE_N 1
#define INET6 1
#define SIZEOF_VOID_P 8
#define SIZEOF_CONST_VOID_P 8
#define YYTEXT_POINTER 1
#define _FILE_OFFSET_BITS 64
#define PACKAGE_NAME "pcap"
#define PACKAGE_TARNAME "pcap"
#define PACKAGE_VERSION "1.10.3"
#define PACKAGE_STRING "pcap 1.10.3"
#define PACKAGE_BUGREPORT ""
#define PACKAGE_URL ""

/*
 * loader.c: kldload(2) and kldunload(2) of a FreeBSD amd64 module file
 * (ELF relocatable) into this process, with the steps and the console
 * messages of sys/kern/link_elf_obj.c and kern_linker.c:
 *
 *   - the allocated sections are laid out in one mapping, each at its
 *     alignment, in the low 2 GB (the module is built for the kernel code
 *     model: 32-bit sign-extended addresses and +-2 GB calls);
 *   - relocations against the module's local symbols are applied first,
 *     then its metadata's dependencies are checked (only "kernel", at
 *     UKLD_OSRELDATE, exists here), then the relocations against global
 *     symbols: the module's own definitions, __start_X / __stop_X for its
 *     own section X, then the emulated KPI (ukld_symtab);
 *   - protections follow the section flags, page by page (a page shared
 *     by two sections gets the union);
 *   - the SYSINITs run; a failed MOD_LOAD unloads the file.
 *
 * As on FreeBSD, any failure while linking ends with "linker_load_file:
 * PATH - unsupported file type" and ENOEXEC. Errors are FreeBSD errno
 * values (the loader's own ones are equal to Linux's).
 */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "loader.h"

#define PAGE_SZ 4096UL
#define ROUND_PAGE(x) (((x) + PAGE_SZ - 1) & ~(PAGE_SZ - 1))

struct ukld_module {
	char *path;
	const char *filename;	/* basename, as lf->filename */
	char *base;		/* the mapping */
	size_t size;		/* bytes used (mapping: page-rounded) */
	struct ukk_modinfo info;
	void **uninit_start, **uninit_stop;
};

/* One module file at a time: kpi_linker.c keeps one list of modules. */
static struct ukld_module *loaded;

/* The file being linked. */
struct elfobj {
	const char *path;
	unsigned char *img;	/* the whole file */
	size_t len;
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh;
	const char *shstr;
	Elf64_Sym *sym;
	size_t nsym;
	const char *str;
	size_t strlen;
	char **secaddr;		/* per section: loaded address or NULL */
	Elf64_Addr *symval;	/* resolved global symbols (cache) */
	unsigned char *symok;
	int hdr_ok;		/* a well-formed ELF header */
	char *msg;
	size_t msglen;
};

/* A console line of the kernel, also collected in the caller's msg. */
static int __attribute__((format(printf, 3, 4)))
say(struct elfobj *o, int error, const char *fmt, ...)
{
	char line[512];
	size_t used;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	uh_printf("%s\n", line);
	if (o->msg != NULL && o->msglen > 0) {
		used = strlen(o->msg);
		snprintf(o->msg + used, o->msglen - used, "%s%s",
		    used ? "; " : "", line);
	}
	return (error);
}

static const char *
secname(struct elfobj *o, unsigned i)
{
	return (o->shstr + o->sh[i].sh_name);
}

static const char *
symname(struct elfobj *o, size_t i)
{
	return (o->sym[i].st_name < o->strlen ? o->str + o->sym[i].st_name :
	    "?");
}

static int
loaded_section(const Elf64_Shdr *s)
{
	return ((s->sh_type == SHT_PROGBITS || s->sh_type == SHT_NOBITS ||
	    s->sh_type == SHT_X86_64_UNWIND) && (s->sh_flags & SHF_ALLOC) &&
	    s->sh_size > 0);
}

static int
in_file(struct elfobj *o, uint64_t off, uint64_t size)
{
	return (off <= o->len && size <= o->len - off);
}

/* The header checks of link_elf_load_file, and the tables we need. */
static int
parse(struct elfobj *o)
{
	unsigned i, nsymtab = 0, symtab = 0;
	Elf64_Shdr *s;

	o->eh = (Elf64_Ehdr *)o->img;
	if (o->len < sizeof(*o->eh) || memcmp(o->img, ELFMAG, SELFMAG) != 0)
		return (say(o, ENOEXEC, "kldload: can't load %s: "
		    "Exec format error", o->path));
	if (o->eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    o->eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return (say(o, ENOEXEC, "kldload: %s: Unsupported file layout",
		    o->path));
	if (o->eh->e_ident[EI_VERSION] != EV_CURRENT ||
	    o->eh->e_version != EV_CURRENT)
		return (say(o, ENOEXEC,
		    "kldload: %s: Unsupported file version", o->path));
	o->hdr_ok = 1;
	if (o->eh->e_type != ET_REL)
		return (ENOSYS);
	if (o->eh->e_machine != EM_X86_64)
		return (say(o, ENOEXEC, "kldload: %s: Unsupported machine",
		    o->path));
	if (o->eh->e_shentsize != sizeof(Elf64_Shdr) || o->eh->e_shnum == 0 ||
	    !in_file(o, o->eh->e_shoff,
	    (uint64_t)o->eh->e_shnum * sizeof(Elf64_Shdr)) ||
	    o->eh->e_shstrndx >= o->eh->e_shnum)
		return (say(o, ENOEXEC, "kldload: %s: bad section headers",
		    o->path));
	o->sh = (Elf64_Shdr *)(o->img + o->eh->e_shoff);
	for (i = 0; i < o->eh->e_shnum; i++) {
		s = &o->sh[i];
		if (s->sh_type != SHT_NOBITS && !in_file(o, s->sh_offset,
		    s->sh_size))
			return (say(o, ENOEXEC,
			    "kldload: %s: section %u outside the file",
			    o->path, i));
		if (s->sh_type == SHT_SYMTAB) {
			nsymtab++;
			symtab = i;
		}
	}
	o->shstr = (const char *)o->img + o->sh[o->eh->e_shstrndx].sh_offset;
	if (nsymtab != 1)
		return (say(o, ENOEXEC,
		    "kldload: %s: file must have exactly one symbol table",
		    o->path));
	s = &o->sh[symtab];
	if (s->sh_link >= o->eh->e_shnum ||
	    o->sh[s->sh_link].sh_type != SHT_STRTAB)
		return (say(o, ENOEXEC,
		    "kldload: %s: file has invalid symbol strings", o->path));
	o->sym = (Elf64_Sym *)(o->img + s->sh_offset);
	o->nsym = s->sh_size / sizeof(Elf64_Sym);
	o->str = (const char *)o->img + o->sh[s->sh_link].sh_offset;
	o->strlen = o->sh[s->sh_link].sh_size;
	return (0);
}

/* All allocated sections in one low mapping, each at its alignment. */
static int
map_sections(struct elfobj *o, struct ukld_module *m)
{
	uint64_t off = 0, align;
	unsigned i;
	Elf64_Shdr *s;

	for (i = 0; i < o->eh->e_shnum; i++) {
		s = &o->sh[i];
		if (!loaded_section(s))
			continue;
		align = s->sh_addralign > 1 ? s->sh_addralign : 1;
		off = (off + align - 1) & ~(align - 1);
		s->sh_addr = off;	/* our copy of the file: offset in map */
		off += s->sh_size;
	}
	if (off == 0)
		return (say(o, ENOEXEC, "kldload: %s: file has no contents",
		    o->path));
	m->size = off;
	m->base = mmap(NULL, ROUND_PAGE(off), PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return (say(o, ENOMEM,
		    "ukld: %s: no room for %lu bytes in the low 2 GB",
		    o->path, (unsigned long)off));
	}
	for (i = 0; i < o->eh->e_shnum; i++) {
		s = &o->sh[i];
		if (!loaded_section(s))
			continue;
		o->secaddr[i] = m->base + s->sh_addr;
		if (s->sh_type != SHT_NOBITS)
			memcpy(o->secaddr[i], o->img + s->sh_offset,
			    s->sh_size);
	}
	return (0);
}

/* A loaded section by name (linker sets), or -1. */
static int
find_section(struct elfobj *o, const char *name)
{
	unsigned i;

	for (i = 0; i < o->eh->e_shnum; i++)
		if (o->secaddr[i] != NULL && strcmp(secname(o, i), name) == 0)
			return ((int)i);
	return (-1);
}

/*
 * The value of symbol i, as elf_obj_lookup: a definition of the module;
 * else __start_X/__stop_X of its own section X; else the KPI. 0 with *val
 * set, or -1 (undefined).
 */
static int
lookup(struct elfobj *o, size_t i, Elf64_Addr *val)
{
	const Elf64_Sym *sy = &o->sym[i];
	const struct ukld_sym *k;
	const char *name;
	int sec, stop;

	if (sy->st_shndx == SHN_ABS) {
		*val = sy->st_value;
		return (0);
	}
	if (sy->st_shndx != SHN_UNDEF && sy->st_shndx < SHN_LORESERVE) {
		if (sy->st_shndx >= o->eh->e_shnum ||
		    o->secaddr[sy->st_shndx] == NULL)
			return (-1);
		*val = (Elf64_Addr)o->secaddr[sy->st_shndx] + sy->st_value;
		return (0);
	}
	if (sy->st_shndx != SHN_UNDEF || ELF64_ST_BIND(sy->st_info) ==
	    STB_LOCAL)
		return (-1);	/* commons (kmod links with -d), bogus */
	if (o->symok[i]) {
		*val = o->symval[i];
		return (0);
	}
	name = symname(o, i);
	sec = -1;
	stop = strncmp(name, "__stop_", 7) == 0;
	if (strncmp(name, "__start_", 8) == 0)
		sec = find_section(o, name + 8);
	else if (stop)
		sec = find_section(o, name + 7);
	if (sec >= 0) {
		*val = (Elf64_Addr)o->secaddr[sec] +
		    (stop ? o->sh[sec].sh_size : 0);
	} else {
		for (k = ukld_symtab; k->name != NULL; k++)
			if (strcmp(k->name, name) == 0)
				break;
		if (k->name != NULL)
			*val = (Elf64_Addr)k->addr;
		else if (ELF64_ST_BIND(sy->st_info) == STB_WEAK)
			*val = 0;
		else
			return (-1);
	}
	o->symval[i] = *val;
	o->symok[i] = 1;
	return (0);
}

static const char *
reltype_name(unsigned t)
{
	switch (t) {
	case R_X86_64_64: return ("R_X86_64_64");
	case R_X86_64_PC32: return ("R_X86_64_PC32");
	case R_X86_64_PLT32: return ("R_X86_64_PLT32");
	default: return ("R_X86_64_32S");
	}
}

/*
 * One relocation, as amd64's elf_reloc: 0, -1 (unexpected type or no
 * symbol; FreeBSD's message printed) or ENOEXEC (a 32-bit field that
 * cannot hold the value: the kernel never meets that, a harness can).
 */
static int
reloc_one(struct elfobj *o, unsigned tsec, uint64_t off, unsigned type,
    size_t symi, int64_t addend)
{
	char *where = o->secaddr[tsec] + off;
	Elf64_Addr s;
	int64_t v;
	int32_t v32;

	switch (type) {
	case R_X86_64_NONE:
		return (0);
	case R_X86_64_64:
	case R_X86_64_PC32:
	case R_X86_64_PLT32:
	case R_X86_64_32S:
		break;
	default:
		say(o, 0, "kldload: unexpected relocation type %u", type);
		return (-1);
	}
	if (lookup(o, symi, &s) != 0)
		return (-1);
	if (type == R_X86_64_64) {
		s += addend;
		memcpy(where, &s, sizeof(s));
		return (0);
	}
	v = (int64_t)(s + addend);
	if (type != R_X86_64_32S)
		v -= (int64_t)(uintptr_t)where;
	if (v != (int32_t)v)
		return (say(o, ENOEXEC,
		    "ukld: %s: %s at %s+%#lx to %s: %#lx does not fit 32 bits",
		    o->path, reltype_name(type), secname(o, tsec),
		    (unsigned long)off, symname(o, symi), (unsigned long)v));
	v32 = (int32_t)v;
	memcpy(where, &v32, sizeof(v32));
	return (0);
}

/*
 * Every relocation section whose target is loaded; `local` chooses the
 * relocations against local symbols (link_elf_reloc_local) or the others
 * (relocate_file).
 */
static int
relocate(struct elfobj *o, int local)
{
	const Elf64_Shdr *s;
	const Elf64_Rela *ra;
	const Elf64_Rel *rl;
	uint64_t off, n, j;
	int64_t addend;
	int32_t a32;
	unsigned i, tsec, type, width;
	size_t symi;
	int error;

	for (i = 0; i < o->eh->e_shnum; i++) {
		s = &o->sh[i];
		if ((s->sh_type != SHT_RELA && s->sh_type != SHT_REL) ||
		    s->sh_info >= o->eh->e_shnum ||
		    !(o->sh[s->sh_info].sh_flags & SHF_ALLOC))
			continue;
		tsec = s->sh_info;
		if (o->secaddr[tsec] == NULL)
			return (say(o, ENOEXEC,
			    "kldload: %s: lost base for relatab", o->path));
		n = s->sh_size / (s->sh_type == SHT_RELA ? sizeof(*ra) :
		    sizeof(*rl));
		ra = (const Elf64_Rela *)(o->img + s->sh_offset);
		rl = (const Elf64_Rel *)ra;
		for (j = 0; j < n; j++) {
			addend = 0;
			if (s->sh_type == SHT_RELA) {
				off = ra[j].r_offset;
				symi = ELF64_R_SYM(ra[j].r_info);
				type = ELF64_R_TYPE(ra[j].r_info);
				addend = ra[j].r_addend;
			} else {
				off = rl[j].r_offset;
				symi = ELF64_R_SYM(rl[j].r_info);
				type = ELF64_R_TYPE(rl[j].r_info);
			}
			if (symi >= o->nsym || (ELF64_ST_BIND(
			    o->sym[symi].st_info) == STB_LOCAL) != local)
				continue;
			width = type == R_X86_64_64 ? 8 : 4;
			if (off > o->sh[tsec].sh_size - width ||
			    o->sh[tsec].sh_size < width)
				return (say(o, ENOEXEC,
				    "kldload: %s: relocation outside %s",
				    o->path, secname(o, tsec)));
			if (s->sh_type == SHT_REL && width == 8)
				memcpy(&addend, o->secaddr[tsec] + off, 8);
			else if (s->sh_type == SHT_REL) {
				memcpy(&a32, o->secaddr[tsec] + off, 4);
				addend = a32;
			}
			error = reloc_one(o, tsec, off, type, symi, addend);
			if (error > 0)
				return (error);
			if (error < 0 && !local)
				return (say(o, ENOENT,
				    "link_elf_obj: symbol %s undefined",
				    symname(o, symi)));
			/* FreeBSD leaves a failed local relocation as it is;
			 * running such code here would only crash. */
			if (error < 0)
				return (say(o, ENOEXEC, "ukld: %s: refused: a "
				    "relocation against local symbol %s failed",
				    o->path, symname(o, symi)));
		}
	}
	return (0);
}

/* link_elf_protect: per page, the union of its sections' rights. */
static void
protect(struct elfobj *o, struct ukld_module *m)
{
	size_t npages = ROUND_PAGE(m->size) / PAGE_SZ, p, q;
	unsigned char *prot;
	const Elf64_Shdr *s;
	unsigned i;

	prot = calloc(npages, 1);
	if (prot == NULL)
		return;		/* stays read-write-execute */
	for (i = 0; i < o->eh->e_shnum; i++) {
		s = &o->sh[i];
		if (o->secaddr[i] == NULL)
			continue;
		for (p = s->sh_addr / PAGE_SZ;
		    p < ROUND_PAGE(s->sh_addr + s->sh_size) / PAGE_SZ; p++)
			prot[p] |= PROT_READ |
			    (s->sh_flags & SHF_WRITE ? PROT_WRITE : 0) |
			    (s->sh_flags & SHF_EXECINSTR ? PROT_EXEC : 0);
	}
	for (p = 0; p < npages; p = q) {
		for (q = p + 1; q < npages && prot[q] == prot[p]; q++)
			;
		mprotect(m->base + p * PAGE_SZ, (q - p) * PAGE_SZ,
		    prot[p] ? prot[p] : PROT_READ);
	}
	free(prot);
}

static void
set_bounds(struct elfobj *o, const char *name, void ***start, void ***stop)
{
	int sec = find_section(o, name);

	*start = *stop = NULL;
	if (sec >= 0) {
		*start = (void **)o->secaddr[sec];
		*stop = (void **)(o->secaddr[sec] + o->sh[sec].sh_size);
	}
}

/* linker_load_dependencies: the metadata; "kernel" is the one module here. */
static int
check_metadata(struct elfobj *o, struct ukld_module *m)
{
	void **start, **stop;
	char why[256] = "";
	int error;

	set_bounds(o, "set_modmetadata_set", &start, &stop);
	if (start == NULL)
		return (0);
	error = ukk_read_modmetadata(start, stop, &m->info, why, sizeof(why));
	if (error == EINVAL)
		return (say(o, EINVAL, "kldload: %s: %s", o->path, why));
	if (error != 0)		/* a module other than the kernel */
		return (say(o, error,
		    "KLD %s: depends on %s - not available or version mismatch",
		    m->filename, why));
	if (m->info.has_kernel_dep &&
	    (UKLD_OSRELDATE < m->info.kernel_min ||
	    UKLD_OSRELDATE > m->info.kernel_max))
		return (say(o, ENOENT, "KLD %s: depends on kernel - not "
		    "available or version mismatch", m->filename));
	return (0);
}

static void
module_free(struct ukld_module *m)
{
	if (m->base != NULL)
		munmap(m->base, ROUND_PAGE(m->size));
	free(m->path);
	free(m);
}

/* link_elf_load_file, from the file's bytes to a linked image. */
static int
link_file(struct elfobj *o, struct ukld_module *m)
{
	int error;

	if ((error = parse(o)) != 0)
		return (error);
	o->secaddr = calloc(o->eh->e_shnum, sizeof(*o->secaddr));
	o->symval = calloc(o->nsym + 1, sizeof(*o->symval));
	o->symok = calloc(o->nsym + 1, 1);
	if (o->secaddr == NULL || o->symval == NULL || o->symok == NULL)
		return (ENOMEM);
	if ((error = map_sections(o, m)) != 0 ||
	    (error = relocate(o, 1)) != 0 ||
	    (error = check_metadata(o, m)) != 0 ||
	    (error = relocate(o, 0)) != 0)
		return (error);
	protect(o, m);
	set_bounds(o, "set_sysuninit_set", &m->uninit_start, &m->uninit_stop);
	return (0);
}

static int
read_file(struct elfobj *o)
{
	FILE *f;
	long len = 0;
	int error = 0;

	if ((f = fopen(o->path, "rb")) == NULL)
		return (errno);
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		error = EIO;
	else if ((o->img = malloc(len > 0 ? len : 1)) == NULL)
		error = ENOMEM;
	else if (fread(o->img, 1, len, f) != (size_t)len)
		error = EIO;
	o->len = error ? 0 : len;
	fclose(f);
	return (error);
}

int
ukld_kldload(const char *path, struct ukld_module **modp, char *msg,
    size_t msglen)
{
	struct elfobj o = { .path = path, .msg = msg, .msglen = msglen };
	struct ukld_module *m;
	void **start, **stop;
	const char *slash;
	int error;

	uh_boot();
	uh_cpu_enter();
	if (msg != NULL && msglen > 0)
		msg[0] = '\0';
	*modp = NULL;
	slash = strrchr(path, '/');
	if (loaded != NULL) {
		/* A file of that name is loaded: EEXIST, as linker_load_module. */
		if (strcmp(loaded->filename, slash ? slash + 1 : path) == 0)
			return (say(&o, EEXIST, "kldload: can't load %s: "
			    "module already loaded or in kernel", path));
		return (say(&o, EBUSY, "ukld: %s: %s is loaded; the harness "
		    "holds one module file at a time", path, loaded->path));
	}
	if ((error = read_file(&o)) != 0) {
		free(o.img);
		return (say(&o, error, "kldload: can't load %s: %s", path,
		    strerror(error)));
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->path = strdup(path)) == NULL) {
		free(m);
		free(o.img);
		return (ENOMEM);
	}
	m->filename = slash ? m->path + (slash - path) + 1 : m->path;
	error = link_file(&o, m);
	if (error == 0) {
		set_bounds(&o, "set_sysinit_set", &start, &stop);
		loaded = m;
		if (ukk_run_sysinits(start, stop) != 0) {
			/* Every module failed MOD_LOAD: the file goes. */
			if (ukk_unload(m->uninit_start, m->uninit_stop) != 0) {
				error = say(&o, ENOEXEC, "ukld: %s: MOD_LOAD "
				    "failed and the unload was refused; the "
				    "file stays mapped", path);
				goto out;
			}
			loaded = NULL;
			error = say(&o, ENOEXEC, "ukld: %s: every module "
			    "failed MOD_LOAD; the file was unloaded", path);
		}
	} else if (o.hdr_ok) {
		/* link_elf.c, tried next, takes ET_DYN/ET_EXEC only. */
		error = say(&o, ENOEXEC,
		    "linker_load_file: %s - unsupported file type", path);
	}
	if (error == 0)
		*modp = m;
	else
		module_free(m);
out:
	free(o.img);
	free(o.secaddr);
	free(o.symval);
	free(o.symok);
	return (error);
}

int
ukld_kldunload(struct ukld_module *m)
{
	int error;

	uh_boot();
	uh_cpu_enter();
	error = ukk_unload(m->uninit_start, m->uninit_stop);
	if (error != 0)
		return (error);
	loaded = NULL;
	module_free(m);
	return (0);
}

const struct ukk_modinfo *
ukld_module_info(const struct ukld_module *m)
{
	return (&m->info);
}

void
ukld_module_range(const struct ukld_module *m, void **base, size_t *size)
{
	*base = m->base;
	*size = m->size;
}

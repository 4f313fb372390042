/*
 * bad_reloc.S: loads the address of the kernel's `hz` through the GOT, as
 * position-independent code would. The assembler emits
 * R_X86_64_REX_GOTPCRELX (42), which FreeBSD's amd64 kernel linker does
 * not handle ("kldload: unexpected relocation type 42").
 */
	.text
	.globl	ukld_bad_gotpcrel
	.type	ukld_bad_gotpcrel, @function
ukld_bad_gotpcrel:
	movq	hz@GOTPCREL(%rip), %rax
	movl	(%rax), %eax
	ret
	.size	ukld_bad_gotpcrel, . - ukld_bad_gotpcrel
	.section .note.GNU-stack, "", @progbits

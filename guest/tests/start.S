/* PVH entry for the strata test guests.
 *
 * Contract (xen/include/public/arch-x86/hvm/start_info.h, "HVM direct boot ABI"): the loader
 * enters _start32 in 32-bit protected mode, paging off, flat 4 GiB code/data segments, with
 * %ebx = guest-physical address of a struct hvm_start_info (magic 0x336ec578).
 *
 * We load our own GDT, turn on PAE + EFER.LME + paging with static identity-mapped page tables
 * (2 MiB pages, the first 4 GiB, so the virtio-mmio window at 0xd0000000.. and QEMU microvm's
 * window at 0xfeb00000.. are reachable), far-jump to 64-bit code and call guest_main(start_info).
 * No 32-bit iret, no int n, no SSE: only what KVM's instruction emulator can execute.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define MSR_EFER 0xc0000080

	/* The PVH note: name "Xen", type 18, desc = the 32-bit entry point. The descriptor is 8
	 * bytes (.quad): QEMU 7.x reads a size_t there, Firecracker/linux-loader read the low 4. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz */
	.long 8			/* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.quad _start32

	.section .text.entry, "ax", @progbits
	.code32
	.globl _start32
_start32:
	cli
	cld
	movl	%ebx, %esi		/* start_info, kept for guest_main */
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	%cr4, %eax
	orl	$0x20, %eax		/* CR4.PAE */
	movl	%eax, %cr4
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$0x100, %eax		/* EFER.LME */
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax	/* CR0.PG | CR0.PE */
	andl	$0x9fffffff, %eax	/* caches on (CD, NW clear) */
	movl	%eax, %cr0
	lgdt	gdt_ptr
	ljmp	$0x08, $start64

	.code64
start64:
	movl	$0x10, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movq	$stack_top, %rsp
	/* Zero .bss (the loader should have, but a guest must not depend on it). */
	movq	$__bss_start, %rdi
	movq	$__bss_end, %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq
	movl	%esi, %edi		/* guest_main(start_info physical address) */
	call	guest_main
	call	power_off
1:	cli
	hlt
	jmp	1b

	.section .rodata.gdt, "a"
	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code, DPL 0 */
	.quad 0x00cf92000000ffff	/* 0x10: data, 4 GiB flat */
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt

	/* Static page tables: no loop at boot (hello.elf is what the boot benchmark runs). */
	.section .data.pagetables, "aw"
	.balign 4096
pml4:
	.quad pdpt + 0x3		/* present, writable */
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + 0x3
	.quad pd + 0x1000 + 0x3
	.quad pd + 0x2000 + 0x3
	.quad pd + 0x3000 + 0x3
	.fill 508, 8, 0
pd:
	.set i, 0
	.rept 2048
	.quad (i << 21) | 0x83		/* present, writable, 2 MiB page */
	.set i, i + 1
	.endr

	.section .stack, "aw", @nobits
	.balign 16
	.skip 32768
stack_top:

	.section .note.GNU-stack, "", @progbits

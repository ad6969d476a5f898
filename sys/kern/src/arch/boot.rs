//! The one 32-bit entry for both boot protocols, and the way to long mode.
//!
//! QEMU's `-kernel` finds the PVH note (`XEN_ELFNOTE_PHYS32_ENTRY`) and
//! enters `start32` with EBX = `hvm_start_info`; GRUB finds the multiboot2
//! header and enters the ELF entry, which is also `start32`, with EAX =
//! 0x36d76289 and EBX = the multiboot2 information. Both arrive in 32-bit
//! protected mode with paging off and no usable stack, so the stub:
//! 1. builds throw-away page tables identity-mapping the first 4 GiB with
//!    2 MiB pages (the kernel's real tables are built later in Rust): the
//!    loader's information may lie anywhere below 4 GiB (UEFI GRUB puts it
//!    high), and the kernel reads it before its own tables exist;
//! 2. enables PAE, long mode and NX, then paging;
//! 3. far-returns into 64-bit code, zeroes `.bss` and calls
//!    `kmain(eax, ebx)`, which tells the protocols apart by the magic.
//!
//! The early tables and the boot stack live in `.boot.bss`, outside the
//! `.bss` range the stub zeroes, because they are in use while it does so.
//!
//! Under UEFI, GRUB enters the same 32-bit entry: our multiboot2 header
//! carries no "EFI boot services" tag (type 7) and no EFI amd64 entry tag
//! (type 9), so GRUB calls `ExitBootServices`, leaves the CPU in 32-bit
//! protected mode with paging off, and the firmware's memory other than
//! runtime services and ACPI is ours. The kernel asks for no framebuffer
//! either: its console is the serial port.

core::arch::global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header_start:
    .long 0xE85250D6
    .long 0
    .long mb2_header_end - mb2_header_start
    .long -(0xE85250D6 + (mb2_header_end - mb2_header_start))
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long start32

    .section .boot.bss, "aw", @nobits
    .balign 4096
early_pml4: .skip 4096
early_pdpt: .skip 4096
early_pd:   .skip 4 * 4096
    .balign 16
early_stack: .skip 256
early_stack_top:

    .section .boot.text, "ax"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_ptr:
    .short 23
    .long boot_gdt

    .code32
    .global start32
start32:
    cli
    cld
    mov ebp, eax
    mov esi, ebx
    mov esp, offset early_stack_top

    mov edi, offset early_pml4
    xor eax, eax
    mov ecx, 6 * 1024
    rep stosd

    mov eax, offset early_pdpt
    or eax, 3
    mov dword ptr [early_pml4], eax
    xor ecx, ecx
3:
    mov eax, ecx
    shl eax, 12
    add eax, offset early_pd
    or eax, 3
    mov dword ptr [early_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jne 3b
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov dword ptr [early_pd + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jne 2b

    mov eax, offset early_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x900
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax

    lgdt [boot_gdt_ptr]
    mov eax, offset start64
    push 0x08
    push eax
    retf

    .code64
start64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax

    mov rdi, offset __bss_start
    mov rcx, offset __bss_end
    sub rcx, rdi
    xor eax, eax
    rep stosb

    mov rsp, offset {stack} + {stack_size}
    mov edi, ebp
    mov esi, esi
    call {kmain}
    ud2
"#,
    kmain = sym crate::kmain,
    stack = sym crate::arch::stacks::BOOT_CPU_STACK,
    stack_size = const crate::arch::stacks::KERNEL_STACK_SIZE,
);

/* Calling by thread migration from C (lav_proc_call, lav_bind), the C side of calllib.s
   (lavsim.kernel.sharing): the same local path, instruction for instruction, with the status
   stored through a pointer instead of left in ECX. Exporting C procedures is LAV_EXPORT in
   lavender.h (the trampoline is generated there, per procedure). */
#include <lavender.h>

/* The caller's group id, written by the loader (create_elf_process): calllib.s has it as the
   .equ LAV_GROUP. */
unsigned int __lav_group = 0;

/* long long lav_proc_call(const struct lav_address *a, int *status, int nargs, ...):
   [EBP+8] a, [EBP+12] status, [EBP+16] nargs, [EBP+16+4k] arg k. */
__asm__(
    ".pushsection .text\n"
    ".intel_syntax noprefix\n"
    ".globl lav_proc_call\n"
    ".type lav_proc_call, @function\n"
    "lav_proc_call:\n"
    "    push ebp\n"
    "    mov ebp, esp\n"
    "    mov eax, dword ptr [ebp+8]\n"
    "    cmp dword ptr [eax], 0\n"
    "    jne .Llav_pc_unreachable\n"
    "    mov edx, dword ptr [eax+4]\n"
    "    cmp edx, 0xFFFFFFFF\n"
    "    je .Llav_pc_local\n"
    "    cmp edx, dword ptr [__lav_group]\n"
    "    jne .Llav_pc_unreachable\n"
    ".Llav_pc_local:\n"
    /* the far pointer (offset, selector) at [EBP-8], then the arguments, arg1 on top */
    "    push dword ptr [eax+8]\n"
    "    push dword ptr [eax+12]\n"
    "    mov ecx, dword ptr [ebp+16]\n"
    "    test ecx, ecx\n"
    "    jz .Llav_pc_call\n"
    ".Llav_pc_copy:\n"
    "    push dword ptr [ebp+16+ecx*4]\n"
    "    dec ecx\n"
    "    jnz .Llav_pc_copy\n"
    ".Llav_pc_call:\n"
    "    call fword ptr [ebp-8]\n"
    "    xor ecx, ecx\n"
    "    jmp .Llav_pc_done\n"
    ".Llav_pc_unreachable:\n"
    "    mov eax, -32\n"
    "    mov ecx, eax\n"
    "    cdq\n"
    ".Llav_pc_done:\n"
    "    mov esp, ebp\n"
    "    push edx\n"
    "    mov edx, dword ptr [ebp+12]\n"
    "    test edx, edx\n"
    "    jz 1f\n"
    "    mov dword ptr [edx], ecx\n"
    "1:  pop edx\n"
    "    pop ebp\n"
    "    ret\n"
    ".size lav_proc_call, .-lav_proc_call\n"
    ".att_syntax prefix\n"
    ".popsection\n");

int lav_bind(const struct lav_address *a, int nargs) {
    if (nargs < 0 || nargs > 31) return LAV_E_NARGS;
    if ((a->flags & LAV_ADDR_FLAG_PARAMS) && (int)((a->flags >> 8) & 0x1F) != nargs)
        return LAV_E_NARGS;
    return 0;
}

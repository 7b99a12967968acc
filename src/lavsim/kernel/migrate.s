# Lavender kernel: which process a thread is in while it runs a migrated procedure.
#
# A thread that far-called through a call gate into another process's procedure keeps its
# home process (TCB_PROCESS, whose LDT stays loaded) but runs that process's code. The code
# segment selector tells them apart: slots below LDT_FIRST_SHARED of an LDT are the LDT
# process's own segments; an import slot of the LDT, or an export slot of the GDT, belongs to
# the process that exported it. The boot loader's sharing setup (lavsim.kernel.sharing)
# records every slot's owner in the LDT_OWNER and GDT_OWNER tables (one byte, a pid, per
# slot; 0 = the LDT's own process).

# frame_owner: the PCB of the process whose code the trapped context ran (EBP = the frame;
# its CS selector). Returns EAX = PCB address. Changes ECX EDX.
frame_owner:
    mov eax, dword ptr [k_current_process]
    movzx ecx, word ptr [ebp+FR_CS]
    mov edx, ecx
    shr ecx, 3
    # TI = 1: a slot of the current LDT; TI = 0: a slot of the GDT.
    test edx, 4
    jz .Lowner_gdt
    cmp ecx, LDT_FIRST_SHARED
    jb .Lowner_done
    mov edx, dword ptr [eax+PCB_PID]
    imul edx, edx, LDT_ENTRIES
    movzx edx, byte ptr [LDT_OWNER_LINEAR+edx+ecx]
    jmp .Lowner_found
.Lowner_gdt:
    movzx edx, byte ptr [GDT_OWNER_LINEAR+ecx]
.Lowner_found:
    # Owner 0: the process whose LDT is loaded.
    test edx, edx
    jz .Lowner_done
    imul edx, edx, PCB_SIZE
    lea eax, [PCB_LINEAR+edx]
.Lowner_done:
    ret

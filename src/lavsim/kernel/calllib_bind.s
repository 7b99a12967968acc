# Lavender call library: lav_bind, the parameter-count check of a call site (appended after
# lav_call and the remote half by lavsim.kernel.sharing.lav_call_source, so that adding it
# moves no code of the measured path).
#
# lav_bind(address, nargs), cdecl: the caller pushes nargs and the DS offset of an address
# structure, calls lav_bind and drops 8 bytes. Returns EAX = 0 when the procedure takes nargs
# parameters, or when the structure records no count (LAV_ADDR_FLAG_PARAMS clear: written by
# hand, or forwarded from another host); EAX = LAV_E_NARGS when its count differs. Changes
# EAX only.
#
# Why a separate check: the gate copies its own parameter count of doublewords whatever nargs
# lav_call was given, so a mismatch makes the procedure read the wrong words and return a
# wrong result. lav_call itself does not check: a compare in it would add cycles to every
# migrating call. Check once per call site, after the lookup that returned the structure.
lav_bind:
    mov eax, dword ptr [esp+4]
    mov eax, dword ptr [eax+LAV_ADDR_FLAGS]
    test eax, LAV_ADDR_FLAG_PARAMS
    jz .Lbind_ok
    shr eax, LAV_ADDR_PARAMS_SHIFT
    and eax, LAV_ADDR_PARAMS_MASK
    cmp eax, dword ptr [esp+8]
    jne .Lbind_mismatch
.Lbind_ok:
    xor eax, eax
    ret
.Lbind_mismatch:
    mov eax, LAV_E_NARGS
    ret

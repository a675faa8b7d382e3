/*
 * bcryptprimitives.dll with the one export Rust's std needs: ProcessPrng,
 * which std imports since Rust 1.78 (rust-lang/rust#121337) and wine 8
 * lacks (every binary would exit with status 53). It forwards to advapi32's
 * SystemFunction036 (RtlGenRandom). Only for running the tests under wine;
 * never shipped. `.ci/run` builds it with mingw.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* ProcessPrng fills `data` with `len` random bytes; it is documented to
 * always return TRUE. SystemFunction036 takes a ULONG length, so a longer
 * request is filled in pieces. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

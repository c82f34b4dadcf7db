a = mmap 0 3p rw private|anonymous
mprotect $a 1 r            => ok
write $a+1p 1 0x1          => ok
write $a 1 0x1             => SIGSEGV/SEGV_ACCERR
maps

a = mmap 0 3p rw private|anonymous
write $a 3p 0x41
mprotect $a+1p 1p r        => ok
write $a+1p 1 0x42         => SIGSEGV/SEGV_ACCERR
write $a+2p 1 0x42         => ok
maps

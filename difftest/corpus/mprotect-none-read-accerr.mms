a = mmap 0 2p rw private|anonymous
write $a 2p 0x1
mprotect $a 2p none
read $a+1p 1               => SIGSEGV/SEGV_ACCERR
mprotect $a 2p r
read $a+1p 1               => ok

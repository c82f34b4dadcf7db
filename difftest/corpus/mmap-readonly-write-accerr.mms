a = mmap 0 2p r private|anonymous
read $a 2p                 => ok
write $a+1p+5 1 0x1        => SIGSEGV/SEGV_ACCERR

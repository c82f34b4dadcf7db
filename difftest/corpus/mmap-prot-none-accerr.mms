a = mmap 0 1p none private|anonymous
read $a 1                  => SIGSEGV/SEGV_ACCERR
write $a 1 0x1             => SIGSEGV/SEGV_ACCERR

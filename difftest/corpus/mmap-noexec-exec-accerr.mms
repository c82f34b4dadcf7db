a = mmap 0 1p rw private|anonymous
write $a 1 0xc3
exec $a                    => SIGSEGV/SEGV_ACCERR

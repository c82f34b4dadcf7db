r = mmap 0 4p rw private|anonymous
write $r 2p 0x71
mprotect $r+2p 2p r
b = mremap $r 2p 4p maymove  => ok
read $b+1p 2
read $r 1                  => SIGSEGV/SEGV_MAPERR
maps

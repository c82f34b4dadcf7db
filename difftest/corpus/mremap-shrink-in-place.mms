a = mmap 0 4p rw private|anonymous
write $a 4p 0x61
b = mremap $a 4p 2p 0
read $a+1p 1               => ok
read $a+2p 1               => SIGSEGV/SEGV_MAPERR
maps

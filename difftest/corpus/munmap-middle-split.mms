a = mmap 0 5p rw private|anonymous
write $a 5p 0x42
munmap $a+2p 1p            => ok
read $a+1p 2
read $a+2p 1               => SIGSEGV/SEGV_MAPERR
read $a+3p 2
maps

a = mmap 0 4p rw private|anonymous
munmap $a 1p               => ok
maps
read $a 1                  => SIGSEGV/SEGV_MAPERR

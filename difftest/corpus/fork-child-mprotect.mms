a = mmap 0 3p rw private|anonymous
fork {
  mprotect $a+1p 1p r
  write $a+1p 1 0x1        => SIGSEGV/SEGV_ACCERR
  maps
}
write $a+1p 1 0x1          => ok
maps

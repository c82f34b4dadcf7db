a = mmap 0 2p rw private|anonymous
write $a 2p 0x1
fork {
  munmap $a 2p             => ok
  read $a 1                => SIGSEGV/SEGV_MAPERR
}
read $a 1                  => ok
maps

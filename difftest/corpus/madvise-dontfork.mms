# A MADV_DONTFORK range is not in the child.
a = mmap 0 2p rw private|anonymous
write $a 2p 0x21
madvise $a+1p 1p dontfork  => ok
fork {
  read $a 1                  => ok
  read $a+1p 1               => SIGSEGV/SEGV_MAPERR
  maps
}
read $a+1p 1
maps

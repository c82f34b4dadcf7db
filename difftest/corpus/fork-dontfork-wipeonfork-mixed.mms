a = mmap 0 3p rw private|anonymous
write $a 3p 0x8
madvise $a 1p dontfork
madvise $a+2p 1p wipeonfork
fork {
  read $a 1                  => SIGSEGV/SEGV_MAPERR
  read $a+1p 1
  read $a+2p 1
  maps
}

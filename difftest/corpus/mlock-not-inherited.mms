# Memory locks are not inherited by a child created by fork.
a = mmap 0 2p rw private|anonymous
mlock $a 2p
fork {
  smaps
  maps
}
smaps

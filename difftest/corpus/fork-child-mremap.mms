a = mmap 0 2p rw private|anonymous
write $a 2p 0x3
fork {
  b = mremap $a 2p 4p maymove
  read $b 1
  maps
}
maps

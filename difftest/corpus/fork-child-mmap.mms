fork {
  c = mmap 0 2p rw private|anonymous
  write $c 1 0x1
  maps
}
a = mmap 0 2p rw private|anonymous
maps

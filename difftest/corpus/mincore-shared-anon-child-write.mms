a = mmap 0 2p rw shared|anonymous
fork {
  write $a+1p 1 0x1
}
mincore $a 2p

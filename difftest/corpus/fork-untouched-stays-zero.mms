a = mmap 0 2p rw private|anonymous
fork {
  read $a+1p 2
  mincore $a 2p
}
mincore $a 2p

a = mmap 0 2p rw private|anonymous
write $a 1 0x1
mincore $a 1
mincore $a 1p+1

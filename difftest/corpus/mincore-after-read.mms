a = mmap 0 2p rw private|anonymous
read $a+1p 1
mincore $a 2p

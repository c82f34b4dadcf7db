a = mmap 0 2p rw private|anonymous
mlock2 $a 2p 0             => ok
mincore $a 2p

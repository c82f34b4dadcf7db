a = mmap 0 2p rw private|anonymous|locked
smaps
mincore $a 2p

a = mmap 0 1p rw private|anonymous
mincore $a 0               => ok

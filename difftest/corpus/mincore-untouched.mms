a = mmap 0 4p rw private|anonymous
mincore $a 4p              => ok

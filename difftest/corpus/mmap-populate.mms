a = mmap 0 4p rw private|anonymous|populate  => ok
mincore $a 4p
smaps

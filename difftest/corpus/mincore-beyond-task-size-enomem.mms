a = mmap 0 1p rw private|anonymous
mincore $a 0x800000000000  => ENOMEM

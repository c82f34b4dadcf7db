a = mmap 0 2p rw private|anonymous
mincore $a+1 1p            => EINVAL

a = mmap 0 1p rw private|anonymous
msync $a+1 1p sync         => EINVAL

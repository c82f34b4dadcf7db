a = mmap 0 1p rw private|anonymous
mlock2 $a 1p 2             => EINVAL
mlock2 $a 1p 0x80          => EINVAL
